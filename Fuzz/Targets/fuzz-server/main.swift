// The whole server over one connection under libFuzzer (Sources/PEMISFuzzing/ServerFuzzing.swift).
import Foundation
import PEMISFuzzDriver
import PEMISFuzzing
import PEMISWireFuzzing

FuzzSeeds.writeIfAsked(FuzzCorpus.serverSeeds(), dictionary: FuzzCorpus.serverDictionary())
_ = ServerFuzzing.shared
exit(runFuzzer { start, count in
  ServerFuzzing.shared.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
})
