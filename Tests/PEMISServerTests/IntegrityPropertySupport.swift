import Foundation
import Logging
import PEMISDomain
import Synchronization

@testable import PEMISRouting
@testable import PEMISStore

/// The in-process district the integrity property test drives: a registry and a pool of shards
/// in a temporary directory (durability `.normal`, as a test needs no power-loss safety), three
/// kindergartens with three classes each, and the `Router` of the "current process" — replaced
/// by a new instance (another process) after a simulated crash.
final class PropertyDistrict: @unchecked Sendable {
  static let codes = ["1100000001", "1100000002", "1100000003"]
  let directory: String
  let registry: Registry
  let shards: ShardPool
  let clock: TestClock
  let calendar: WorkingDayCalendar
  /// Class ids by kindergarten (small, middle, large when made; promotions move them up).
  var classes: [String: [String]] = [:]
  private(set) var router: Router

  init() async throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-property-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let store = StoreConfiguration(durability: .normal, maxOpenShards: 8)
    registry = try Registry(directory: directory, keys: testKeys, configuration: store)
    shards = try ShardPool(directory: (directory as NSString).appendingPathComponent("shards"), keys: testKeys, configuration: store)
    calendar = try WorkingDayCalendar(years: [])
    let clock = TestClock()
    self.clock = clock
    router = Router(registry: registry, shards: shards, calendar: calendar, logger: Self.quiet, now: { clock.now })
    // As `pemis-load seed-district` registers kindergartens: one registry transaction, then shards.
    try await registry.seedActiveKindergartens(
      Self.codes.map { (code: $0, name: "幼儿园 \($0)", ownership: Ownership.public) }, principalPasswordHash: "unused", at: clock.now)
    for code in Self.codes {
      let shard = try await shards.create(try InstitutionCode(validating: code), createdAt: clock.now)
      for (name, grade) in [("小一班", Grade.small), ("中一班", .middle), ("大一班", .large)] {
        let made = try await shard.createClass(
          KindergartenClass(name: name, grade: grade, schoolYear: "2026-2027", headTeacherStaffId: nil, capacity: 60), by: "seed", at: clock.now)
        classes[code, default: []].append(made.id)
      }
    }
  }

  static let quiet = Logger(label: "property", factory: { _ in SwiftLogNoOpLogHandler() })

  /// The server restarted: a new router with its own instance id, so the old process's
  /// reservations are another process's. Its fault points carry over (the test arms them).
  func restart() -> Router {
    router = Router(
      registry: registry, shards: shards, calendar: calendar, logger: Self.quiet, now: { [clock] in clock.now }, faults: router.faults)
    return router
  }

  func shard(_ code: String) async throws -> TenantShard {
    try await shards.shard(try InstitutionCode(validating: code))
  }

  /// Where the record is active now (nil: nowhere), read from the shards; and its row there, or
  /// the newest row anywhere.
  func truth(_ recordNumber: String) async throws -> (active: [String], row: ChildRow?) {
    var active: [String] = []
    var row: ChildRow?
    for code in Self.codes {
      guard let held = try await shard(code).child(recordNumber) else { continue }
      if held.state.isActive {
        active.append(code)
        row = held
      } else if row == nil || !(row!.state.isActive) {
        row = held
      }
    }
    return (active, row)
  }

  func remove() {
    try? FileManager.default.removeItem(atPath: directory)
  }
}

/// Synthetic identities: child `n` of a sequence has a valid resident ID no other `n` has; the
/// persons without ID come from a small pool, so that the same person turns up in two
/// kindergartens and the duplicate sweep has cases to open.
enum PropertyChildren {
  static func idNumber(_ n: Int) -> (id: String, birth: CalendarDate, gender: Gender) {
    let birth = CalendarDate(dayNumber: CalendarDate(year: 2021, month: 9, day: 1).dayNumber + (n / 500) % 700)
    let sequence = n % 500 * 2 + (n % 3 == 0 ? 1 : 0)
    func pad(_ v: Int, _ w: Int) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
    let body = "120116" + pad(birth.year, 4) + pad(birth.month, 2) + pad(birth.day, 2) + pad(sequence, 3)
    return (body + String(IDDocuments.checkCharacter(Array(body))!), birth, sequence % 2 == 1 ? .male : .female)
  }

  static let names = ["王小明", "李晓红", "张子轩", "刘欣怡", "陈浩宇", "杨雨萱", "赵一诺", "黄梓涵"]

  static func record(name: String, gender: Gender, birth: CalendarDate, type: IDDocumentType, number: String) -> ChildRecord {
    ChildRecord(
      name: name, gender: gender, birthDate: birth, idDocumentType: type, idDocumentNumber: number, nationality: "CHN", ethnicity: "01",
      birthPlace: "120116", householdRegister: "120116", householdType: "resident", hmtStatus: "none", health: "healthy", onlyChild: false,
      guardians: [.init(name: "王大明", relation: "father", phone: "13800000000")], entryDate: CalendarDate(year: 2026, month: 9, day: 1))
  }

  /// Child `n` with its own resident ID; record number G + ID.
  static func withID(_ n: Int) -> (recordNumber: String, child: ChildRecord) {
    let (id, birth, gender) = idNumber(n)
    return ("G" + id, record(name: names[n % names.count], gender: gender, birth: birth, type: .residentID, number: id))
  }

  /// Person `p` of the pool without an ID document; record number J9 + a unique serial.
  static func withoutID(person p: Int, serial: Int) -> (recordNumber: String, child: ChildRecord) {
    let birth = CalendarDate(year: 2022, month: 3, day: 1 + p % 4)
    let number = String(serial)
    return (
      "J9" + String(repeating: "0", count: max(0, 17 - number.count)) + number,
      record(name: names[p % 4], gender: p % 2 == 0 ? .male : .female, birth: birth, type: .other, number: "")
    )
  }
}

/// The figures of a whole run, shared by its sequences.
final class PropertyFigures: Sendable {
  private struct State {
    var sequences = 0
    var operations = 0
    var refusals = 0
    var uncertain = 0
    var faultHits = 0
    var armed = 0
    var violations: [String] = []
    var byKind: [String: Int] = [:]
  }
  private let state = Mutex(State())

  /// Adds one sequence's figures; returns the sequences so far (for a progress line).
  @discardableResult
  func sequence(operations: Int, refusals: Int, uncertain: Int, faultHits: Int, armed: Int, byKind: [String: Int], violations: [String]) -> Int {
    state.withLock {
      $0.sequences += 1
      $0.operations += operations
      $0.refusals += refusals
      $0.uncertain += uncertain
      $0.faultHits += faultHits
      $0.armed += armed
      $0.violations += violations
      $0.byKind.merge(byKind, uniquingKeysWith: +)
      return $0.sequences
    }
  }

  /// One line for a long run's log: how far it is, and whether anything was found yet.
  var progress: String {
    state.withLock { "integrity property: \($0.sequences) sequences so far, \($0.operations) operations, \($0.violations.count) violations" }
  }

  var summary: String {
    state.withLock { s in
      let kinds = s.byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
      return "integrity property: \(s.sequences) sequences, \(s.operations) operations (\(kinds)); "
        + "\(s.refusals) expected refusals, \(s.uncertain) failed or crashed and resolved from the shards; "
        + "\(s.armed) fault points armed, \(s.faultHits) fault points hit; \(s.violations.count) violations"
    }
  }
  var violations: [String] { state.withLock { $0.violations } }
}
