// The whole server over one connection under libFuzzer (Sources/PEMISFuzzing/ServerFuzzing.swift).
import Foundation
import PEMISFuzzDriver
import PEMISFuzzing
import PEMISWireFuzzing

/// One input. libFuzzer's own `main` (linked whole, and shadowed by this program's) needs the name.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  ServerFuzzing.shared.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
}

FuzzSeeds.writeIfAsked(FuzzCorpus.serverSeeds(), dictionary: FuzzCorpus.serverDictionary())
_ = ServerFuzzing.shared
exit(runFuzzer(fuzzOneInput))
