import Foundation
import Testing

/// The crash-safety harness, small: the real server process is killed with SIGKILL at random
/// moments while clients run the mixed workload (transfers, enrollments, imports, accidental
/// departures, key-information changes), restarted (recovery at start), and at the end the
/// invariant is checked from the shards up, by the harness and by `pemis-server check`.
@Suite("Kill harness", .serialized)
struct KillHarnessTests {
  @Test("SIGKILL during a concurrent mixed workload: nothing lost or doubled, the index agrees, no transfer stuck")
  func kills() async throws {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-kill-test-\(UUID())").path
    let output = try await run(
      productsDirectory.appendingPathComponent("pemis-load"),
      [
        "kill-harness", "--data-dir", data, "--kindergartens", "4", "--children", "10", "--clients", "4", "--kills", "4",
        "--min-ms", "500", "--max-ms", "1200", "--calendar-dir", repositoryRoot.appendingPathComponent("Config/calendar").path,
        "--durability", "normal",
      ], timeout: 300)
    #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
    #expect(output.stdout.contains("survived 4 kills: nothing lost or doubled"), "\(output.stdout)")
    #expect(output.stdout.contains("active children = 40 seeded + "), "\(output.stdout)")
    #expect(output.stdout.contains("children lost: 0, doubled: 0"), "\(output.stdout)")
    // Every kind of work ran between the kills.
    for kind in ["transfers", "enroll", "import", "depart", "key-change"] {
      #expect(output.stdout.range(of: "\(kind) [1-9]", options: .regularExpression) != nil, "\(kind) never acknowledged: \(output.stdout)")
    }
    // And the server's own check agrees.
    let check = try await run(productsDirectory.appendingPathComponent("pemis-server"), ["check", "--data-dir", data])
    #expect(check.status == 0, "\(check.stdout)")
    #expect(check.stdout.contains("consistent: every record number is active in one shard at most"))
    try? FileManager.default.removeItem(atPath: data)
  }

  @Test("pemis-server check exits 1 and names the disagreement when the index is wrong; --repair fixes it")
  func checkCommand() async throws {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-check-test-\(UUID())").path
    let seed = try await run(
      productsDirectory.appendingPathComponent("pemis-load"), ["seed-district", "--data-dir", data, "--kindergartens", "2", "--children", "3"])
    #expect(seed.status == 0, "\(seed.stderr)")
    let clean = try await run(productsDirectory.appendingPathComponent("pemis-server"), ["check", "--data-dir", data])
    #expect(clean.status == 0, "\(clean.stdout)")
    #expect(clean.stdout.contains("checked 2 kindergartens: 6 child records, 6 active, 6 index entries"))
    // Damage the index behind the server's back.
    let sqlite = try await run(
      URL(fileURLWithPath: "/usr/bin/env"),
      ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE child_index SET kindergartenCode='1199999999' WHERE rowid=1\"); c.commit()", data + "/registry.sqlite"])
    #expect(sqlite.status == 0, "\(sqlite.stderr)")
    let broken = try await run(productsDirectory.appendingPathComponent("pemis-server"), ["check", "--data-dir", data])
    #expect(broken.status == 1)
    #expect(broken.stdout.contains("index disagrees"))
    let repaired = try await run(productsDirectory.appendingPathComponent("pemis-server"), ["check", "--data-dir", data, "--repair"])
    #expect(repaired.status == 0, "\(repaired.stdout)")
    try? FileManager.default.removeItem(atPath: data)
  }
}
