// libFuzzer entry point for the frame decoder (Sources/PEMISFuzzing/FrameFuzzing.swift).
import Foundation
import PEMISFuzzing

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
  FuzzSeeds.writeIfAsked(FuzzCorpus.frameSeeds(), dictionary: nil)
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
  FrameFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}
