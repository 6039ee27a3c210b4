// libFuzzer's driver, called from each fuzz executable's own `main`. SwiftPM gives an executable
// target a `main` of its own, which shadows libFuzzer's, so the executables run the driver
// explicitly (LLVMFuzzerRunDriver, libFuzzer's entry point for programs with their own main).
// This target exists only in the fuzz build, where libFuzzer is linked.

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Runs libFuzzer with this process's arguments, calling `oneInput` for each input.
public func runFuzzer(_ oneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
  var argc = CommandLine.argc
  var argv = CommandLine.unsafeArgv
  return LLVMFuzzerRunDriver(&argc, &argv, oneInput)
}

/// Never called: libFuzzer's own `main`, linked whole and shadowed by the program's, refers to
/// this name, so it must exist for the link. Inputs go to the callback given to ``runFuzzer(_:)``.
@_cdecl("LLVMFuzzerTestOneInput")
public func unusedTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  fatalError("libFuzzer's own main ran; the fuzz executables call runFuzzer from theirs")
}
