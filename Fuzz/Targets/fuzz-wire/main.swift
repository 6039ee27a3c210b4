// The connection state machine under libFuzzer (Sources/PEMISWireFuzzing/StateMachineFuzzing.swift).
import Foundation
import PEMISFuzzDriver
import PEMISWireFuzzing

/// One input. libFuzzer's own `main` (linked whole, and shadowed by this program's) needs the name.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  StateMachineFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}

FuzzSeeds.writeIfAsked(StateMachineFuzzing.seeds(), dictionary: nil)
exit(runFuzzer(fuzzOneInput))
