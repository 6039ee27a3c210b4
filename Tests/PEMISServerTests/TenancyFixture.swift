import Foundation
import GRDB
import GRPCCore
import Logging
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Synchronization
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// How `body` failed, as the client saw it: its status, or nil when it succeeded; an error
/// that is not an RPC status comes back as UNKNOWN naming it. The one copy every suite uses.
func failure(_ body: () async throws -> Void) async -> RPCError? {
  do {
    try await body()
    return nil
  } catch let error as RPCError {
    return error
  } catch {
    return RPCError(code: .unknown, message: "the client saw a non-RPC error: \(error)")
  }
}

/// A clock tests can move: seconds since 1970.
final class TestClock: Sendable {
  private let seconds = Atomic<Int64>(1_790_000_000)
  var now: Int64 { seconds.load(ordering: .relaxed) }
  func advance(_ by: Int64) { seconds.add(by, ordering: .relaxed) }
}

/// A running server with a district: an account for every role, two active kindergartens
/// (A public, B private) with all kindergarten roles, and applications in each onboarding state.
struct District: Sendable {
  let address: ServerAddress
  let server: PEMISServer
  let clock: TestClock
  let dataDirectory: String
  /// The standard gRPC (HTTP/2) listener, when the test asked for one.
  var http2Address: ServerAddress? = nil

  static let password = "Pemis-test-2026"
  static let kindergartenA = "1112000101"  // public
  static let kindergartenB = "1112000102"  // private

  var registry: Registry { server.tenancy.registry }

  /// Username of the account with `role` (kindergarten roles: of kindergarten A, or B when asked).
  static func user(_ role: Role, kindergarten: String = kindergartenA) -> String {
    role.isDistrict ? role.rawValue.replacingOccurrences(of: "_", with: ".") : "\(role.rawValue.replacingOccurrences(of: "_", with: "."))\(kindergarten.suffix(1) == "1" ? ".a" : ".b")"
  }

  func login(_ username: String, _ password: String = District.password) async throws -> Pemis_V1_LoginResponse {
    try await withPEMISClient(address) { client in
      try await Pemis_V1_Session.Client(wrapping: client).login(.with {
        $0.username = username
        $0.password = password
      })
    }
  }

  /// Runs `body` as the account with this username (logged in fresh).
  func asUser<R: Sendable>(_ username: String, _ body: (GRPCClient<PEMISWireClientTransport>) async throws -> R) async throws -> R {
    let token = try await login(username).token
    return try await withPEMISClient(address, token: token, body)
  }

  func `as`<R: Sendable>(_ role: Role, _ body: (GRPCClient<PEMISWireClientTransport>) async throws -> R) async throws -> R {
    try await asUser(District.user(role), body)
  }

  static func form(_ name: String, _ ownership: Pemis_V1_Ownership) -> Pemis_V1_ApplicationForm {
    .with {
      $0.name = name
      $0.ownership = ownership
      $0.licenceNumber = "教民\(UniqueNumbers.next())号"
      $0.address = "天津市滨海新区"
      $0.sponsor = "滨海新区教育体育局"
      $0.approvalDate = .with { $0.year = 2024; $0.month = 3; $0.day = 1 }
      $0.openingDate = .with { $0.year = 2024; $0.month = 9; $0.day = 1 }
      $0.childrenCount = 100
      $0.staffCount = 20
      $0.property = "owned"
    }
  }

  /// Creates an account directly in the registry with the shared test password, already changed.
  func seedAccount(_ username: String, _ role: Role, kindergarten: String? = nil) async throws {
    var record = AccountRecord(
      username: username, role: role, kindergartenCode: kindergarten, displayName: username,
      passwordHash: try server.tenancy.hasher.hash(District.password), createdAt: clock.now)
    record.mustChangePassword = false
    try await registry.createAccount(record)
  }

  /// Submits an application as the responsible office and walks it to `state`.
  func application(_ ownership: Pemis_V1_Ownership, to state: OnboardingState, code: String? = nil) async throws -> String {
    let office: Role = ownership == .public ? .preschoolOffice : .vocationalOffice
    let id = try await self.as(office) { client in
      try await Pemis_V1_Onboarding.Client(wrapping: client).submitApplication(.with {
        $0.form = District.form("幼儿园\(UniqueNumbers.next())", ownership)
      }).applicationID
    }
    if state == .submitted { return id }
    if state == .returned {
      _ = try await self.as(office) { client in
        try await Pemis_V1_Onboarding.Client(wrapping: client).reviewApplication(.with {
          $0.applicationID = id
          $0.reason = "incomplete"
        })
      }
      return id
    }
    _ = try await self.as(office) { client in
      try await Pemis_V1_Onboarding.Client(wrapping: client).reviewApplication(.with {
        $0.applicationID = id
        $0.approve = true
      })
    }
    if state == .approved { return id }
    let assigned = code ?? "11129\(UniqueNumbers.next(digits: 5))"
    _ = try await self.as(.planningOffice) { client in
      try await Pemis_V1_Onboarding.Client(wrapping: client).admitKindergarten(.with {
        $0.applicationID = id
        $0.institutionCode = assigned
      })
    }
    if state == .admitted { return id }
    _ = try await self.as(office) { client in
      try await Pemis_V1_Onboarding.Client(wrapping: client).recordCommitment(.with {
        $0.applicationID = id
        $0.commitment = .with {
          $0.signatory = "园长"
          $0.signedOn = .with { $0.year = 2024; $0.month = 9; $0.day = 2 }
        }
      })
    }
    if state == .committed { return id }
    let n = UniqueNumbers.next()
    _ = try await self.as(.districtAdmin) { client in
      try await Pemis_V1_Onboarding.Client(wrapping: client).issueAccounts(.with {
        $0.applicationID = id
        $0.principalUsername = "p\(n)"
        $0.principalName = "园长"
        $0.administratorUsername = "a\(n)"
        $0.administratorName = "管理员"
      })
    }
    return id
  }

  /// Every table of every SQLite file in the data directory, and its list of files
  /// (``DataFingerprint``): what a denied call must leave as it was.
  /// - Parameter auditThrough: leave the audit entries after this sequence number out (the
  ///   `auditHead` of the fingerprint taken before the call).
  func fingerprint(auditThrough: Int64? = nil) async throws -> DataFingerprint {
    try await DataFingerprint.of(dataDirectory, auditThrough: auditThrough)
  }

  /// The audit entries written after sequence number `seq`, oldest first.
  func auditEntries(after seq: Int64) async throws -> [AuditRecord] {
    try await registry.writer.read { db in
      try AuditRecord.filter(Column("seq") > seq).order(Column("seq")).fetchAll(db)
    }
  }
}

/// Starts a server on a copy of the district described on ``District`` and runs `body` with it.
/// The district is built once per test process through the real server (``DistrictTemplate``);
/// each call gets its own copy of its data directory, so what one test writes no other sees.
func withDistrict<R: Sendable>(
  _ configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (District) async throws -> R
) async throws -> R {
  let template = try await DistrictTemplate.directory()
  let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-district-\(UUID())").path
  try DistrictTemplate.copyDataDirectory(template, to: data)
  defer {
    try? FileManager.default.removeItem(atPath: data)
    try? FileManager.default.removeItem(atPath: DataKeys.defaultFile(forDataDirectory: data))
  }
  return try await withDistrictServer(dataDirectory: data, configure, body)
}

/// Runs the real `PEMISServer` in this process on `dataDirectory`, with a test clock and a
/// low password hashing cost, as a ``District`` (whatever the directory holds).
func withDistrictServer<R: Sendable>(
  dataDirectory: String, _ configure: (inout ServerConfiguration) -> Void = { _ in },
  _ body: (District) async throws -> R
) async throws -> R {
  var configuration = ServerConfiguration.defaults
  configuration.port = 0
  // Many servers share the test process: its resident size is not one server's.
  configuration.memoryLimitBytes = 0
  configure(&configuration)
  configuration.passwordHashCost = 10
  configuration.calendarDirectory = repositoryRoot.appendingPathComponent("Config/calendar").path
  configuration.dataDirectory = dataDirectory
  let clock = TestClock()
  let server = try PEMISServer(
    configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
    now: { clock.now })
  return try await withThrowingTaskGroup(of: Void.self) { group in
    // As pemis-server runs it: the audit log's service beside the server.
    group.addTask { try await server.auditLog.run() }
    group.addTask { try await server.run() }
    let address = try ServerAddress(parsing: try await server.listeningHostAndPort)
    let http2Address = try await server.http2ListeningHostAndPort.map { try ServerAddress(parsing: $0) }
    let district = District(
      address: address, server: server, clock: clock, dataDirectory: configuration.dataDirectory,
      http2Address: http2Address)
    let result = await Result { try await body(district) }
    group.cancelAll()
    try? await group.waitForAll()
    return try result.get()
  }
}

/// The district every ``withDistrict(_:_:)`` starts from, built once per test process: an
/// account for every role, two active kindergartens (A public, B private) with all kindergarten
/// roles, all through a real server. Building it took most of a test's time when every test did
/// (each onboarding step is a login and a call); copying it takes milliseconds.
///
/// A copy is what a restart of that server would find: the registry and shards, checkpointed.
/// The test clock starts at the same second in every ``District``, so the copy's times agree
/// with it.
enum DistrictTemplate {
  private static let built = Task<(directory: String, tokens: [String: String]), any Error> { try await build() }

  /// The template's data directory (built on first use; never written to after).
  static func directory() async throws -> String { try await built.value.directory }

  /// A session of every role's account (``District/user(_:kindergarten:)``, kindergarten A),
  /// opened while the template was built: the sessions are in every copy, and valid there for
  /// 12 hours of its test clock. Spares a login (a scrypt hash) per role per test.
  static func token(_ username: String) async throws -> String {
    guard let token = try await built.value.tokens[username] else {
      throw ServerProcessError(message: "no template session for \(username)")
    }
    return token
  }

  /// Seeds a fresh data directory through the real server, stops the server and checkpoints
  /// every database, so each is one self-contained file.
  static func build() async throws -> (directory: String, tokens: [String: String]) {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-district-template-\(UUID())").path
    let tokens = try await withDistrictServer(dataDirectory: data) { district -> [String: String] in
      for role in Role.district { try await district.seedAccount(District.user(role), role) }
      // Two active kindergartens through the real onboarding calls, then their staff.
      for (code, ownership) in [(District.kindergartenA, Pemis_V1_Ownership.public), (District.kindergartenB, .private)] {
        _ = try await district.application(ownership, to: .active, code: code)
        for role in Role.kindergarten {
          try await district.seedAccount(District.user(role, kindergarten: code), role, kindergarten: code)
        }
      }
      var tokens: [String: String] = [:]
      for role in Role.allCases { tokens[District.user(role)] = try await district.login(District.user(role)).token }
      return tokens
    }
    for file in try DataFingerprint.files(in: data) where file.hasSuffix(".sqlite") {
      let database = try DatabaseQueue(path: (data as NSString).appendingPathComponent(file))
      try await database.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
      try database.close()
    }
    return (data, tokens)
  }

  /// Copies a data directory that no server is writing: every file, each database with its
  /// `-wal` (empty after ``build()``'s checkpoint, copied all the same so a copy is never half a
  /// database), never a `-shm` (SQLite rebuilds it from the `-wal`). Owner-only, as the server
  /// makes them.
  static func copyDataDirectory(_ source: String, to destination: String) throws {
    let manager = FileManager.default
    try manager.createDirectory(atPath: destination, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    // The key file lives beside the data directory (dataKeyFile's default): the copy gets its own.
    let keyFile = DataKeys.defaultFile(forDataDirectory: source)
    if manager.fileExists(atPath: keyFile) {
      try manager.copyItem(atPath: keyFile, toPath: DataKeys.defaultFile(forDataDirectory: destination))
    }
    guard let walker = manager.enumerator(atPath: source) else { return }
    while let file = walker.nextObject() as? String {
      let from = (source as NSString).appendingPathComponent(file)
      let to = (destination as NSString).appendingPathComponent(file)
      var isDirectory: ObjCBool = false
      guard manager.fileExists(atPath: from, isDirectory: &isDirectory) else { continue }
      if isDirectory.boolValue {
        try manager.createDirectory(atPath: to, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      } else if !file.hasSuffix("-shm") {
        do {
          try manager.copyItem(atPath: from, toPath: to)
          try manager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: to)
        } catch where file.hasSuffix("-wal") && !manager.fileExists(atPath: from) {
          // Gone since the listing: its last connection closed, after checkpointing it.
        }
      }
    }
  }
}
