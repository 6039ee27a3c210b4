import ArgumentParser
import Foundation
import GRPCCore
import Histogram
import Logging
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISServer
import PEMISStore
import SwiftProtobuf

/// Seeds a data directory with many active kindergartens, offline, for load runs.
struct SeedDistrict: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "seed-district",
    abstract: "Fill a (new) data directory with N active kindergartens and their shards, offline.",
    discussion: """
      Each kindergarten gets a shard, a registry entry and a principal account p<code> with the \
      password given by --password; with --children, that many synthetic children in three \
      classes, indexed in the registry. A Preschool Education Office account district.seed gets \
      the same password. For load runs only: real kindergartens come through onboarding.
      """)

  @Option(name: .customLong("data-dir"), help: "Data directory to fill (created if missing).") var dataDirectory: String
  @Option(help: "How many kindergartens.") var kindergartens: Int = 1000
  @Option(help: "Password of every seeded principal.") var password: String = "Seeded-principal-2026"
  @Option(help: "Children per kindergarten (synthetic, valid unique IDs), in three classes.") var children: Int = 0
  @Option(help: "Shard files created at once.") var parallel: Int = 8
  @Option(help: "Problem records of each kind the duplicate sweep must find (invalid ID, same ID twice, same person without ID).")
  var problems: Int = 0

  func run() async throws {
    guard (1...100_000).contains(kindergartens) else { throw ValidationError("--kindergartens must be 1...100000") }
    guard problems >= 0, problems == 0 || kindergartens >= 2 else { throw ValidationError("--problems needs at least 2 kindergartens") }
    let names = SyntheticChildren.distinctGiven.count
    guard problems <= names * names * names else { throw ValidationError("--problems must be at most \(names * names * names)") }
    var configuration = ServerConfiguration.defaults
    configuration.dataDirectory = dataDirectory
    configuration.passwordHashCost = 10
    configuration.maxOpenShards = 32
    let server = try PEMISServer(configuration: configuration, logger: Logger(label: "seed", factory: { _ in SwiftLogNoOpLogHandler() }))
    let tenancy = server.tenancy
    let existing = try await tenancy.registry.kindergartens(ownership: nil, offset: 0, limit: 1).total
    let started = ContinuousClock.now
    let items = (0..<kindergartens).map { i -> (code: String, name: String, ownership: Ownership) in
      let code = "11\(String(format: "%08d", existing + i + 1))"
      return (code, "幼儿园 \(code)", i % 3 == 0 ? .private : .public)
    }
    let hash = try ServerSecrets.hashPassword(password, costLog2: 10)
    let now = Int64(Date().timeIntervalSince1970)
    for chunk in stride(from: 0, to: items.count, by: 1000) {
      try await tenancy.registry.seedActiveKindergartens(
        Array(items[chunk..<min(chunk + 1000, items.count)]), principalPasswordHash: hash, at: now)
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      var done = 0
      for (index, item) in items.enumerated() {
        if index >= parallel {
          try await group.next()
          done += 1
          if done % 1000 == 0 { print("  \(done) shards created") }
        }
        let ordinal = existing + index
        let children = self.children
        group.addTask {
          let shard = try await tenancy.shards.create(try InstitutionCode(validating: item.code), createdAt: now)
          if children > 0 { try await Self.seedChildren(shard, kindergarten: ordinal, count: children, tenancy: tenancy, at: now) }
        }
      }
      try await group.waitForAll()
    }
    if problems > 0 {
      try await Self.plantProblems(problems, in: items.map(\.code), after: (existing + kindergartens) * max(children, 1), tenancy: tenancy, at: now)
    }
    // A district account for the district console and the summary benchmark.
    if try await tenancy.registry.account("district.seed") == nil {
      var district = AccountRecord(
        username: "district.seed", role: .preschoolOffice, kindergartenCode: nil, displayName: "seeded Preschool Education Office",
        passwordHash: hash, createdAt: now)
      district.mustChangePassword = false
      try await tenancy.registry.createAccount(district)
    }
    // The index was written with the children: the server need not build it from the shards.
    try await tenancy.registry.setMeta("childIndexBuilt", String(now))
    let seconds = Double((ContinuousClock.now - started).components.seconds)
      + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
    print("seeded \(kindergartens) kindergartens\(children > 0 ? " × \(children) children" : "") in \(String(format: "%.1f", seconds)) s into \(dataDirectory)")
  }
}

extension SeedDistrict {
  /// The `ordinal`-th kindergarten's children: synthetic children `ordinal × count …`, enrolled in
  /// three classes (small, middle, large) in one shard transaction, and indexed in the registry.
  static func seedChildren(_ shard: TenantShard, kindergarten ordinal: Int, count: Int, tenancy: Tenancy, at: Int64) async throws {
    var classes: [String] = []
    for (name, grade) in [("小一班", Grade.small), ("中一班", .middle), ("大一班", .large)] {
      classes.append(
        try await shard.createClass(
          KindergartenClass(name: name, grade: grade, schoolYear: "2026-2027", headTeacherStaffId: nil, capacity: max(25, count / 3 + 1)), by: "seed",
          at: at
        ).id)
    }
    var rows: [(row: TenantShard.ImportRow, recordNumber: String)] = []
    for i in 0..<count {
      let c = SyntheticChildren.child(ordinal * count + i)
      let child = c.record(onlyChild: i % 3 == 0)
      rows.append((TenantShard.ImportRow(number: i + 1, child: child, classId: classes[i % 3]), "G" + c.idNumber))
    }
    try await shard.applyImport(rows, by: "seed", at: at)
    try await tenancy.registry.syncIndex(
      rows.map {
        ChildIndexRecord(recordNumber: $0.recordNumber, kindergartenCode: shard.code.rawValue, state: .enrolled, child: $0.row.child, updatedAt: at)
      })
  }
}

extension SeedDistrict {
  /// Plants `count` problem records of each kind the duplicate sweep looks for, as records from
  /// before the rules would be (written to the shards directly, then indexed): an invalid ID
  /// number; the same ID in two kindergartens under two record numbers; two children without an
  /// ID sharing name, gender and birth date. Synthetic children from `first` on, so they collide
  /// with nothing else. The sweep should open exactly 3 × `count` cases.
  static func plantProblems(_ count: Int, in codes: [String], after first: Int, tenancy: Tenancy, at: Int64) async throws {
    var planted: [String: [ChildIndexRecord]] = [:]
    func plant(_ record: ChildRecord, _ recordNumber: String, at code: String) async throws {
      let shard = try await tenancy.shards.shard(try InstitutionCode(validating: code))
      _ = try await shard.enroll(record, recordNumber: recordNumber, classId: nil, by: "seed", at: at)
      planted[code, default: []].append(ChildIndexRecord(recordNumber: recordNumber, kindergartenCode: code, state: .enrolled, child: record, updatedAt: at))
    }
    for k in 0..<count {
      let here = codes[k % codes.count]
      let there = codes[(k + 1) % codes.count]
      // (a) the check character is wrong.
      let invalid = SyntheticChildren.child(first + 3 * k)
      let broken = String(invalid.idNumber.dropLast()) + (invalid.idNumber.last == "0" ? "1" : "0")
      try await plant(invalid.record(number: broken), "G" + broken, at: here)
      // (b) one ID, two records: here under its G number, there under a temporary one.
      let twice = SyntheticChildren.child(first + 3 * k + 1)
      try await plant(twice.record(), "G" + twice.idNumber, at: here)
      try await plant(twice.record(), "L" + SyntheticChildren.pad(first + k, 9), at: there)
      // (c) no ID, same name, gender and birth date in both. Synthetic names repeat, so the
      // name carries k (in three given-name characters) to keep each pair its own person.
      var person = SyntheticChildren.child(first + 3 * k + 2)
      let given = SyntheticChildren.distinctGiven
      person.name = String(person.name.prefix(1)) + String([given[k % given.count], given[k / given.count % given.count], given[k / given.count / given.count % given.count]])
      try await plant(person.record(type: .other, number: ""), "J9" + SyntheticChildren.pad(2 * (first + k), 17), at: here)
      try await plant(person.record(type: .other, number: ""), "J9" + SyntheticChildren.pad(2 * (first + k) + 1, 17), at: there)
    }
    for (_, rows) in planted { try await tenancy.registry.syncIndex(rows) }
    print("planted \(count) problem records of each kind (the sweep should open \(3 * count) cases)")
  }
}

/// `pemis-load duplicate-sweep`: the district duplicate sweep's time, first (opening the cases)
/// and again (finding the same problems, opening nothing), with a check of what it found.
struct DuplicateSweepLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "duplicate-sweep", abstract: "Time the district duplicate sweep, first and repeated.",
    discussion: "Against a server on a district seeded with --problems (tools/bench-duplicate-sweep.sh).")

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(help: "Password of district.seed.") var password: String = "Seeded-principal-2026"
  @Option(help: "Cases the first sweep must open (exit 1 otherwise); -1 to skip the check.") var expect: Int = -1

  func run() async throws {
    let address = try ServerAddress(parsing: server)
    let token = try await Sessions.login(address: address, username: "district.seed", password: password)
    try await withPEMISClient(address, token: token) { client in
      let duplicates = Pemis_V1_Duplicates.Client(wrapping: client)
      _ = try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      for label in ["first", "again"] {
        let start = ContinuousClock.now
        let r = try await duplicates.sweepDuplicates(.init())
        let e = (ContinuousClock.now - start).components
        let ms = Double(e.seconds) * 1000 + Double(e.attoseconds) / 1e15
        print("\(label): \(String(format: "%.0f", ms)) ms, \(r.opened) opened, \(r.stillOpen) still open, \(r.resolved) resolved")
        if label == "first", expect >= 0, r.opened != expect {
          print("expected \(expect) cases opened, got \(r.opened)")
          throw ExitCode(1)
        }
      }
    }
  }
}

/// Time of the first call that needs a kindergarten's shard while it is closed, then warm.
struct FirstCall: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "first-call",
    abstract: "Measure a kindergarten's first call with its shard closed, and the same call warm.",
    discussion: "Use against a server started on a seeded data directory (tools/bench-first-call.sh).")

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(help: "How many seeded kindergartens exist (codes 1100000001…).") var kindergartens: Int = 10_000
  @Option(help: "How many kindergartens to sample.") var samples: Int = 200
  @Option(help: "Password of the seeded principals.") var password: String = "Seeded-principal-2026"

  func run() async throws {
    let address = try ServerAddress(parsing: server)
    guard address.host.hasPrefix("127.") || address.host == "localhost" || address.host == "::1" else {
      throw ValidationError("load runs target loopback only")
    }
    var cold = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var warm = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    let codes = (1...kindergartens).shuffled().prefix(samples).map { "11\(String(format: "%08d", $0))" }
    for code in codes {
      let login = try await withPEMISClient(address) { client in
        try await Pemis_V1_Session.Client(wrapping: client).login(.with {
          $0.username = "p\(code)"
          $0.password = password
        })
      }
      try await withPEMISClient(address, token: login.token) { client in
        let kindergartens = Pemis_V1_Kindergartens.Client(wrapping: client)
        // Warm the connection and the session with a call that does not touch the shard.
        _ = try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
        for histogram in [0, 1] {
          let start = ContinuousClock.now
          let k = try await kindergartens.getKindergarten(.init())
          let elapsed = (ContinuousClock.now - start).components
          precondition(k.institutionCode == code)
          let micros = UInt64(elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000)
          if histogram == 0 { _ = cold.record(micros) } else { _ = warm.record(micros) }
        }
      }
    }
    func ms(_ v: UInt64) -> String { String(format: "%.2f", Double(v) / 1000) }
    print("first call to a kindergarten (GetKindergarten), \(kindergartens) kindergartens registered, \(samples) sampled")
    print("         p50 ms   p90 ms   p99 ms   max ms")
    print("cold  " + [cold.valueAtPercentile(50), cold.valueAtPercentile(90), cold.valueAtPercentile(99), cold.max].map { ms($0).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
    print("warm  " + [warm.valueAtPercentile(50), warm.valueAtPercentile(90), warm.valueAtPercentile(99), warm.max].map { ms($0).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
  }
}

/// `pemis-load district-summary`: the district summary's time, cold (the first after a start:
/// every shard read) and warm (nothing changed: every count current in the cache).
struct DistrictSummaryLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "district-summary", abstract: "Time the district summary cold (first after the server started) and warm.",
    discussion: "Against a freshly started server on a seeded district (tools/bench-district-summary.sh).")

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(help: "Password of district.seed.") var password: String = "Seeded-principal-2026"
  @Option(help: "Warm repetitions.") var warm: Int = 20

  func run() async throws {
    let address = try ServerAddress(parsing: server)
    let token = try await Sessions.login(address: address, username: "district.seed", password: password)
    try await withPEMISClient(address, token: token) { client in
      let district = Pemis_V1_District.Client(wrapping: client)
      _ = try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      func timed() async throws -> (Double, Pemis_V1_DistrictSummaryResponse) {
        let start = ContinuousClock.now
        let r = try await district.getDistrictSummary(.init())
        let e = (ContinuousClock.now - start).components
        return (Double(e.seconds) * 1000 + Double(e.attoseconds) / 1e15, r)
      }
      let (cold, first) = try await timed()
      print(String(format: "cold: %.1f ms (%lld kindergartens, %lld children, %lld shards read)", cold, first.kindergartens, first.total.children, first.shardsRead))
      var times: [Double] = []
      var read: Int64 = 0
      for _ in 0..<warm {
        let (t, r) = try await timed()
        times.append(t)
        read += r.shardsRead
      }
      times.sort()
      print(String(format: "warm: p50 %.1f ms, max %.1f ms over %d calls (%lld shards read)", times[times.count / 2], times.last ?? 0, warm, read))
    }
  }
}
