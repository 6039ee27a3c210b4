import Foundation
import PEMISFuzzing
import PEMISWireFuzzing
import Testing

/// Every stored fuzzing input — the seeds, the corpus the fuzzer grew (`Fuzz/Corpus/`) and each
/// crash it ever found (`Fuzz/Regressions/`) — through the same harnesses libFuzzer drives, in an
/// ordinary debug build with assertions on: a fixed crash that comes back fails here.
@Suite("Fuzzing regressions")
struct FuzzRegressionTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static func stored(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
    var inputs: [(String, [UInt8])] = []
    for folder in ["Fuzz/Corpus/\(target)", "Fuzz/Regressions/\(target)"] {
      let directory = root.appendingPathComponent(folder)
      let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
      for name in names.sorted() where !name.hasPrefix(".") {
        inputs.append(("\(folder)/\(name)", Array(try Data(contentsOf: directory.appendingPathComponent(name)))))
      }
    }
    return inputs
  }

  @Test("the frame decoder takes every stored input and each seed")
  func frames() throws {
    let inputs = FrameFuzzing.seeds() + (try Self.stored("frames"))
    #expect(inputs.count >= 12)
    for input in inputs {
      input.bytes.withUnsafeBytes { FrameFuzzing.run($0) }
    }
  }

  @Test("the connection state machine keeps its invariants on every stored input and each seed")
  func wire() throws {
    let inputs = StateMachineFuzzing.seeds() + (try Self.stored("wire"))
    #expect(inputs.count >= 13)
    for input in inputs {
      input.bytes.withUnsafeBytes { StateMachineFuzzing.run($0) }
    }
  }

  @Test("the server takes every stored connection and each seed, and keeps answering")
  func server() async throws {
    let fuzzing = try await ServerFuzzing.start()
    let inputs = FuzzCorpus.serverSeeds() + (try Self.stored("server"))
    #expect(inputs.count >= FuzzCorpus.methods.count)
    // The harness blocks on a socket: on a thread of its own, not the cooperative pool the
    // server's handlers need.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      Thread {
        for input in inputs { input.bytes.withUnsafeBytes { fuzzing.run($0) } }
        done.resume()
      }.start()
    }
    // Still serving after all of them: the health seed answers SERVING on a fresh connection.
    let health = FuzzCorpus.serverSeeds().first { $0.name == "health" }!
    let answer = await withCheckedContinuation { (done: CheckedContinuation<[UInt8], Never>) in
      Thread { done.resume(returning: health.bytes.withUnsafeBytes { fuzzing.exchange($0) }) }.start()
    }
    let ends = Self.frames(answer).filter { $0.kind == 0x06 && $0.stream == 1 }
    #expect(ends.count == 1)
    // CALL_END's field 1 is the status code; proto3 leaves out a 0 (OK).
    #expect(ends.first.map { $0.payload.first != 0x08 || $0.payload.dropFirst().first == 0 } == true)
  }

  /// Frames of docs/PROTOCOL.md §2 in `bytes`: u32 length, kind, flags, u32 stream, payload.
  static func frames(_ bytes: [UInt8]) -> [(kind: UInt8, stream: UInt32, payload: [UInt8])] {
    var frames: [(UInt8, UInt32, [UInt8])] = []
    var i = 0
    while i + 10 <= bytes.count {
      let length = bytes[i..<(i + 4)].reduce(0) { $0 << 8 | Int($1) }
      let stream = bytes[(i + 6)..<(i + 10)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
      guard i + 10 + length <= bytes.count else { break }
      frames.append((bytes[i + 4], stream, Array(bytes[(i + 10)..<(i + 10 + length)])))
      i += 10 + length
    }
    return frames
  }
}
