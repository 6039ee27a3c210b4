import Testing

@testable import PEMISWire

/// The server's watch on its own resident size (issue 12: the server's RSS stays under its
/// configured budget): the pure policy, and reading `/proc/self/statm`.
@Suite("PEMIS wire: memory pressure")
struct MemoryPressureTests {
  static let t0 = ContinuousClock.now
  static let mib = 1024 * 1024

  @Test("pressure from 7/8 of the limit, and over once resident falls below it")
  func threshold() {
    var policy = MemoryPressurePolicy(limit: 448 * Self.mib)
    #expect(policy.threshold == 392 * Self.mib)
    #expect(policy.sample(resident: 100 * Self.mib, at: Self.t0).change == nil)
    #expect(!policy.underPressure)
    #expect(policy.sample(resident: 392 * Self.mib - 1, at: Self.t0).change == nil)
    #expect(policy.sample(resident: 392 * Self.mib, at: Self.t0).change == .began)
    #expect(policy.underPressure)
    #expect(policy.sample(resident: 500 * Self.mib, at: Self.t0).change == nil, "already under pressure")
    #expect(policy.sample(resident: 300 * Self.mib, at: Self.t0).change == .ended)
    #expect(!policy.underPressure)
  }

  @Test("free memory is handed back at most once a second, and only above half the limit")
  func release() {
    var policy = MemoryPressurePolicy(limit: 400 * Self.mib)
    #expect(!policy.sample(resident: 199 * Self.mib, at: Self.t0).release, "below half the limit")
    #expect(policy.sample(resident: 200 * Self.mib, at: Self.t0).release)
    #expect(!policy.sample(resident: 390 * Self.mib, at: Self.t0 + .milliseconds(999)).release, "within the second")
    #expect(policy.sample(resident: 390 * Self.mib, at: Self.t0 + .seconds(1)).release)
  }

  @Test("statm's second field is the resident pages; anything else is not read as a number")
  func statm() {
    #expect(ProcessMemory.parseStatm(Array("311245 10764 6342 1 0 22466 0\n".utf8)) == 10_764)
    #expect(ProcessMemory.parseStatm(Array("311245".utf8)) == nil)
    #expect(ProcessMemory.parseStatm(Array("1 x2 3".utf8)) == nil)
    #expect(ProcessMemory.parseStatm(Array("1 99999999999999999999999 3".utf8)) == nil, "overflow")
    #if os(Linux)
    let resident = ProcessMemory.residentBytes()
    #expect(resident != nil && resident! > 1 * Self.mib, "this test process is resident")
    #endif
  }
}
