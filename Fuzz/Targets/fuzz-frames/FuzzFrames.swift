// libFuzzer entry point for the frame decoder (Sources/PEMISWireFuzzing/FrameFuzzing.swift).
import Foundation
import PEMISWireFuzzing

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
  FuzzSeeds.writeIfAsked(FrameFuzzing.seeds(), dictionary: nil)
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
  FrameFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}
