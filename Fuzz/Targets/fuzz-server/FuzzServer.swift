// libFuzzer entry point for the whole server over one connection
// (Sources/PEMISFuzzing/ServerFuzzing.swift).
import Foundation
import PEMISFuzzing
import PEMISWireFuzzing

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
  FuzzSeeds.writeIfAsked(FuzzCorpus.serverSeeds(), dictionary: FuzzCorpus.serverDictionary())
  _ = ServerFuzzing.shared
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServer(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
  ServerFuzzing.shared.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}
