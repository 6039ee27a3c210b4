import ArgumentParser
import Foundation
import GRDB
import GRPCCore
import Histogram
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// Where each seeded child is, as far as the load generator knows: children move between
/// kindergartens as transfers complete; a child whose transfer ended in an error is set aside
/// (the server's own state is what the final check trusts).
actor ChildPool {
  private var location: [Int: Int]
  private var available: [Int]

  init(kindergartens: Int, childrenEach: Int) {
    location = [:]
    available = []
    for k in 0..<kindergartens {
      for c in 0..<childrenEach {
        location[k * childrenEach + c] = k
        available.append(k * childrenEach + c)
      }
    }
  }

  /// A random child not in flight, with where it is.
  func take() -> (child: Int, kindergarten: Int)? {
    guard !available.isEmpty else { return nil }
    let i = Int.random(in: 0..<available.count)
    available.swapAt(i, available.count - 1)
    let child = available.removeLast()
    return (child, location[child]!)
  }

  func put(_ child: Int, at kindergarten: Int) {
    location[child] = kindergarten
    available.append(child)
  }

  var setAside: Int { location.count - available.count }

  /// Starts again from where the server says the children are (`enrolled` at a kindergarten);
  /// children in an open transfer stay aside.
  func reset(_ enrolledAt: [Int: Int]) {
    location = enrolledAt
    available = Array(enrolledAt.keys)
  }
}

/// Session tokens of the seeded principals, logged in on first use.
actor Sessions {
  let password: String
  private var tokens: [String: String] = [:]

  init(password: String) { self.password = password }

  /// A token for the kindergarten's principal at this server; sessions outlive restarts.
  func token(_ code: String, at address: ServerAddress) async throws -> String {
    if let token = tokens[code] { return token }
    let token = try await Self.login(address: address, username: "p\(code)", password: password)
    tokens[code] = token
    return token
  }

  nonisolated static func login(address: ServerAddress, username: String, password: String) async throws -> String {
    try await withPEMISClient(address) { client in
      try await Pemis_V1_Session.Client(wrapping: client).login(.with {
        $0.username = username
        $0.password = password
      }).token
    }
  }
}

/// What one load run measured.
struct TransferRun: Codable {
  var clients: Int
  var seconds: Double
  var transfers: Int
  var transfersPerSecond: Double
  var reads: Int
  var p50Ms: Double
  var p90Ms: Double
  var p99Ms: Double
  var maxMs: Double
  var errors: [String: Int]
  var rawCommitsPerSecond: Double?
  var commitsPerTransfer: Int
  var checkFindings: Int?
}

/// Full transfers (out at the sender, in at the receiver) by concurrent clients.
struct TransferDriver: Sendable {
  let kindergartens: Int
  let childrenEach: Int
  let sessions: Sessions
  let pool: ChildPool
  let readShare: Double
  let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)

  init(kindergartens: Int, childrenEach: Int, password: String, readShare: Double) {
    self.kindergartens = kindergartens
    self.childrenEach = childrenEach
    self.readShare = readShare
    sessions = Sessions(password: password)
    pool = ChildPool(kindergartens: kindergartens, childrenEach: childrenEach)
  }

  static func code(_ ordinal: Int) -> String { "11\(String(format: "%08d", ordinal + 1))" }

  struct Outcome: Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var transfers = 0
    var reads = 0
    var errors: [String: Int] = [:]
  }

  /// One client until `deadline`, or until `stop()` says so.
  func client(
    number: Int, address: ServerAddress, until deadline: ContinuousClock.Instant, stop: @escaping @Sendable () -> Bool = { false }
  ) async -> Outcome {
    var outcome = Outcome()
    var sequence = 0
    while ContinuousClock.now < deadline && !stop() {
      do {
        try await withPEMISClient(address) { client in
          let transfers = Pemis_V1_Transfers.Client(wrapping: client)
          let children = Pemis_V1_ChildRecords.Client(wrapping: client)
          while ContinuousClock.now < deadline && !stop() {
            if readShare > 0 && Double.random(in: 0..<1) < readShare {
              let code = Self.code(Int.random(in: 0..<kindergartens))
              _ = try await children.listChildren(
                .with { $0.page.pageSize = 20 }, metadata: ["authorization": "Bearer \(try await sessions.token(code, at: address))"])
              outcome.reads += 1
              continue
            }
            guard let (child, from) = await pool.take() else { return }
            var to = Int.random(in: 0..<(kindergartens - 1))
            if to >= from { to += 1 }
            sequence += 1
            let id = "T-\(run)-\(number)-\(sequence)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
            let record = "G" + SyntheticChildren.child(child).idNumber
            let started = ContinuousClock.now
            // An error leaves the child set aside: where it is now is the server's to say.
            do {
              _ = try await transfers.transferOut(
                .with {
                  $0.recordNumber = record
                  $0.toKindergartenCode = Self.code(to)
                  $0.transferID = id
                }, metadata: ["authorization": "Bearer \(try await sessions.token(Self.code(from), at: address))"])
              _ = try await transfers.transferIn(
                .with {
                  $0.transferID = id
                  $0.classID = "C000\(1 + child % 3)"
                }, metadata: ["authorization": "Bearer \(try await sessions.token(Self.code(to), at: address))"])
              let elapsed = (ContinuousClock.now - started).components
              _ = outcome.histogram.record(UInt64(elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000))
              outcome.transfers += 1
              await pool.put(child, at: to)
            }
          }
        }
      } catch let error as RPCError {
        outcome.errors[error.code.grpcName, default: 0] += 1
        try? await Task.sleep(for: .milliseconds(50))
      } catch {
        outcome.errors["\(type(of: error))", default: 0] += 1
        try? await Task.sleep(for: .milliseconds(50))
      }
    }
    return outcome
  }

  /// `clients` clients for `seconds`, with a progress line every second.
  func drive(
    address: ServerAddress, clients: Int, seconds: Double, progress: Bool, stop: @escaping @Sendable () -> Bool = { false }
  ) async -> Outcome {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    return await withTaskGroup(of: Outcome.self) { group in
      for n in 0..<clients { group.addTask { await client(number: n, address: address, until: deadline, stop: stop) } }
      if progress {
        group.addTask {
          let started = ContinuousClock.now
          while ContinuousClock.now < deadline && !stop() {
            try? await Task.sleep(for: .seconds(1))
            let elapsed = ContinuousClock.now - started
            FileHandle.standardError.write(Data("  \(elapsed.components.seconds) s: \(await pool.setAside) children in flight or set aside\n".utf8))
          }
          return Outcome()
        }
      }
      var total = Outcome()
      for await outcome in group {
        total.transfers += outcome.transfers
        total.reads += outcome.reads
        total.histogram.add(outcome.histogram)
        total.errors.merge(outcome.errors, uniquingKeysWith: +)
      }
      return total
    }
  }
}

/// The raw SQLite commit rate on this disk with a durability setting: single-row transactions
/// into a scratch file in `directory`, for `seconds`.
func rawCommitRate(directory: String, durability: String, seconds: Double) throws -> Double {
  let path = (directory as NSString).appendingPathComponent("commit-floor-\(UUID().uuidString).sqlite")
  defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
  var configuration = Configuration()
  configuration.prepareDatabase { db in
    try db.execute(sql: "PRAGMA journal_mode = WAL")
    try db.execute(sql: "PRAGMA synchronous = \(durability == "normal" ? "NORMAL" : "FULL")")
  }
  let queue = try DatabaseQueue(path: path, configuration: configuration)
  try queue.write { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)") }
  let started = ContinuousClock.now
  let deadline = started + .milliseconds(Int64(seconds * 1000))
  var commits = 0
  while ContinuousClock.now < deadline {
    try queue.write { try $0.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: ["x"]) }
    commits += 1
  }
  let elapsed = ContinuousClock.now - started
  return Double(commits) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

/// `pemis-load transfers`: transfer throughput against a running server on a seeded district.
struct TransferLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "transfers",
    abstract: "Run full transfers (out and in) between random seeded kindergartens with concurrent clients.",
    discussion: """
      Against a server on a district seeded with `pemis-load seed-district --children M` \
      (tools/load-transfers.sh does it all). Prints transfers/s, latency percentiles and errors by \
      status; with --data-dir also the raw SQLite commit rate on the same disk, measured in the \
      same run, and the invariant check at the end.
      """)

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(help: "Seeded kindergartens (codes 1100000001…).") var kindergartens: Int = 100
  @Option(help: "Children seeded per kindergarten.") var children: Int = 30
  @Option(help: "Concurrent clients.") var clients: Int = 16
  @Option(help: "Seconds to run.") var duration: Double = 10
  @Option(help: "Share of operations that are reads (0-1).") var reads: Double = 0
  @Option(help: "Password of the seeded principals.") var password: String = "Seeded-principal-2026"
  @Option(help: "The server's data directory: measure the raw commit rate there and check the invariant at the end.") var dataDir: String?
  @Option(help: "The server's durability (full or normal), for the raw commit rate.") var durability: String = "full"
  @Option(help: "Write the result as JSON to this file.") var json: String?

  /// Commits one transfer makes: out (transfer recorded; sender's shard; transfer out with index
  /// and obligations; audit entry) and in (intention; receiver's shard; sender's shard; completion
  /// with index and obligations; audit entry).
  static let commitsPerTransfer = 9

  func run() async throws {
    let address = try ServerAddress(parsing: server)
    guard address.host.hasPrefix("127.") || address.host == "localhost" || address.host == "::1" else {
      throw ValidationError("load runs target loopback only")
    }
    guard kindergartens >= 2 else { throw ValidationError("--kindergartens: at least 2") }
    var floor: Double?
    if let dataDir {
      floor = try rawCommitRate(directory: dataDir, durability: durability, seconds: 3)
      print(String(format: "raw SQLite commits/s on this disk (synchronous=%@): %.0f", durability.uppercased(), floor!))
    }
    let driver = TransferDriver(kindergartens: kindergartens, childrenEach: children, password: password, readShare: reads)
    print("\(clients) clients for \(duration) s, \(kindergartens) kindergartens × \(children) children\(reads > 0 ? ", \(Int(reads * 100))% reads" : "")")
    let started = ContinuousClock.now
    let outcome = await driver.drive(address: address, clients: clients, seconds: duration, progress: true)
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    func ms(_ v: UInt64) -> Double { Double(v) / 1000 }
    let h = outcome.histogram
    var result = TransferRun(
      clients: clients, seconds: seconds, transfers: outcome.transfers, transfersPerSecond: Double(outcome.transfers) / seconds,
      reads: outcome.reads, p50Ms: ms(h.valueAtPercentile(50)), p90Ms: ms(h.valueAtPercentile(90)), p99Ms: ms(h.valueAtPercentile(99)),
      maxMs: ms(h.max), errors: outcome.errors, rawCommitsPerSecond: floor, commitsPerTransfer: Self.commitsPerTransfer)
    print(String(format: "transfers: %d in %.1f s = %.1f/s; reads: %d", outcome.transfers, seconds, result.transfersPerSecond, outcome.reads))
    print(String(format: "latency of a full transfer (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", result.p50Ms, result.p90Ms, result.p99Ms, result.maxMs))
    print("errors: \(outcome.errors.isEmpty ? "none" : outcome.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    if let floor {
      let allowed = floor / Double(Self.commitsPerTransfer)
      print(
        String(
          format: "the raw commit rate allows %.1f transfers/s at %d commits each: measured %.0f%% of it (target: at least 50%%)", allowed,
          Self.commitsPerTransfer, 100 * result.transfersPerSecond / allowed))
    }
    if let dataDir {
      let findings = try await KillHarness.check(dataDirectory: dataDir)
      result.checkFindings = findings.count
      print(findings.isEmpty ? "invariant: consistent" : "invariant: \(findings.count) disagreements:\n  " + findings.joined(separator: "\n  "))
    }
    if let json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try encoder.encode(result).write(to: URL(fileURLWithPath: json))
    }
  }
}
