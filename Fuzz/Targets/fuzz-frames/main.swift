// The frame decoder under libFuzzer (Sources/PEMISWireFuzzing/FrameFuzzing.swift).
import Foundation
import PEMISFuzzDriver
import PEMISWireFuzzing

FuzzSeeds.writeIfAsked(FrameFuzzing.seeds(), dictionary: nil)
exit(runFuzzer { start, count in
  FrameFuzzing.run(UnsafeRawBufferPointer(start: start, count: count))
  return 0
})
