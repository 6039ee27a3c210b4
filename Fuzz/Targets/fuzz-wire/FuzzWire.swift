// libFuzzer entry point for the connection state machine
// (Sources/PEMISWireFuzzing/StateMachineFuzzing.swift).
import Foundation
import PEMISWireFuzzing

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
  FuzzSeeds.writeIfAsked(StateMachineFuzzing.seeds(), dictionary: nil)
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
  StateMachineFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}
