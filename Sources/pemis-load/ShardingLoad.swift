import ArgumentParser
import Foundation
import GRDB

/// `pemis-load sharding`: what one SQLite file per kindergarten buys over one shared file, for
/// the same writes with the same durability: concurrent writers each committing "a child and its
/// history entry" for a random kindergarten, into that kindergarten's own file or into one file
/// all kindergartens share.
struct ShardingLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sharding", abstract: "Per-kindergarten SQLite files against one shared file: commits/s with 1, 4 and 16 writers.")

  @Option(help: "Scratch folder on the disk to measure (default: the temporary folder).") var directory: String?
  @Option(help: "Kindergartens.") var kindergartens: Int = 64
  @Option(help: "Comma-separated writer counts.") var writers: String = "1,4,16"
  @Option(help: "Seconds per measurement.") var seconds: Double = 5
  @Option(help: "full or normal.") var durability: String = "full"

  func run() async throws {
    let base = (directory ?? FileManager.default.temporaryDirectory.path) + "/pemis-sharding-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: base) }
    var configuration = Configuration()
    configuration.journalMode = .wal
    configuration.busyMode = .timeout(10)
    let synchronous = durability == "normal" ? "NORMAL" : "FULL"
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
    let schema = """
      CREATE TABLE IF NOT EXISTS child (recordNumber TEXT PRIMARY KEY, kindergartenCode TEXT NOT NULL, data TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, record TEXT NOT NULL, newValue TEXT NOT NULL, changedAt INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS history_record ON history(record);
      """
    var opened: [DatabaseQueue] = []
    for k in 0..<kindergartens {
      let queue = try DatabaseQueue(path: "\(base)/k\(k).sqlite", configuration: configuration)
      try await queue.write { try $0.execute(sql: schema) }
      opened.append(queue)
    }
    let shards = opened
    let shared = try DatabasePool(path: "\(base)/shared.sqlite", configuration: configuration)
    try await shared.write { try $0.execute(sql: schema) }
    let payload = String(repeating: "x", count: 400)
    print("\(kindergartens) kindergartens, synchronous=\(synchronous), \(seconds) s each: commits/s of 'a child and its history entry'")
    print("writers   one file per kindergarten   one shared file   ratio")
    for count in writers.split(separator: ",").compactMap({ Int($0) }) {
      let sharded = try await measure(writers: count) { n in
        let k = Int.random(in: 0..<kindergartens)
        try await shards[k].write { db in try Self.write(db, kindergarten: k, n: n, payload: payload) }
      }
      let single = try await measure(writers: count) { n in
        let k = Int.random(in: 0..<kindergartens)
        try await shared.write { db in try Self.write(db, kindergarten: k, n: n, payload: payload) }
      }
      print(
        "\(String(count).padding(toLength: 10, withPad: " ", startingAt: 0))\(String(format: "%-28.0f%-18.0f%.2f×", sharded, single, sharded / single))")
    }
  }

  static func write(_ db: Database, kindergarten: Int, n: String, payload: String) throws {
    try db.execute(sql: "INSERT INTO child (recordNumber, kindergartenCode, data) VALUES (?, ?, ?)", arguments: [n, String(kindergarten), payload])
    try db.execute(sql: "INSERT INTO history (record, newValue, changedAt) VALUES (?, ?, ?)", arguments: ["child:" + n, "enrolled", 0])
  }

  /// Commits per second with `writers` tasks each writing as fast as it can.
  func measure(writers: Int, _ write: @escaping @Sendable (String) async throws -> Void) async throws -> Double {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    let started = ContinuousClock.now
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
      for w in 0..<writers {
        group.addTask {
          var count = 0
          while ContinuousClock.now < deadline {
            try await write("G\(w)-\(count)-\(UUID().uuidString)")
            count += 1
          }
          return count
        }
      }
      return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - started
    return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
  }
}
