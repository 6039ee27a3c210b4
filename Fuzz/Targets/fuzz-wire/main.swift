// The connection state machine under libFuzzer (Sources/PEMISWireFuzzing/StateMachineFuzzing.swift).
import Foundation
import PEMISFuzzDriver
import PEMISWireFuzzing

FuzzSeeds.writeIfAsked(StateMachineFuzzing.seeds(), dictionary: nil)
exit(runFuzzer { start, count in
  StateMachineFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
})
