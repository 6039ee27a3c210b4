import Foundation
import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// The authorization matrix's "a denied call changes nothing" is only as strong as the
/// fingerprint it compares; these check the fingerprint itself.
@Suite("The data directory's fingerprint")
struct DataFingerprintTests {
  /// A scratch copy of the seeded district's data directory, removed afterwards.
  func withCopy<R>(_ body: (String) throws -> R) async throws -> R {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-fingerprint-\(UUID())").path
    let template = try await DistrictTemplate.directory()
    try DistrictTemplate.copyDataDirectory(template, to: data)
    defer { try? FileManager.default.removeItem(atPath: data) }
    return try body(data)
  }

  @Test("it hashes every table of the registry and of every shard, and the list of files")
  func coverage() async throws {
    try await withCopy { data in
      let fingerprint = try DataFingerprint.take(data)
      let files = try DataFingerprint.files(in: data)
      #expect(files == ["registry.sqlite", "shards/\(District.kindergartenA).sqlite", "shards/\(District.kindergartenB).sqlite"])
      #expect(fingerprint.files.keys.sorted() == files)
      for file in files {
        let tables = try DatabaseQueue(path: (data as NSString).appendingPathComponent(file)).read { db in
          try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        let hashed = fingerprint.tables.keys.filter { $0.hasPrefix("\(file) › ") }
        #expect(Set(hashed) == Set((["sqlite_master"] + tables).map { "\(file) › \($0)" }))
      }
      // What the first fingerprint hashed: four registry tables and the shards' file names.
      let old = ["account", "application", "onboarding_event", "kindergarten"].map { "registry.sqlite › \($0)" }
      #expect(Set(old).isSubset(of: fingerprint.tables.keys))
      #expect(fingerprint.tables.count > 3 * old.count)
    }
  }

  @Test("a row deleted from any table of any file changes it, naming that table")
  func seesEveryTable() async throws {
    let tables = try await withCopy { data in try DataFingerprint.take(data).tables.filter { $0.value.rows > 0 }.keys.sorted() }
    var outsideTheOldFour = 0
    for key in tables where !key.hasSuffix(" › sqlite_master") {
      try await withCopy { data in
        let parts = key.components(separatedBy: " › ")
        let (file, table) = (parts[0], parts[1])
        let before = try DataFingerprint.take(data)
        var configuration = GRDB.Configuration()
        configuration.foreignKeysEnabled = false
        let database = try DatabaseQueue(path: (data as NSString).appendingPathComponent(file), configuration: configuration)
        // The last row the fingerprint hashes (so not the audit log's own AUTOINCREMENT counter).
        let filter = DataFingerprint.exclusion(file: file, table: table, auditThrough: nil)
        let name = DataFingerprint.quoted(table)
        try database.write { db in
          try db.execute(sql: "DELETE FROM \(name) WHERE rowid = (SELECT max(rowid) FROM \(name) \(filter))")
          #expect(db.changesCount == 1, "\(key): nothing deleted")
        }
        try database.close()
        let after = try DataFingerprint.take(data)
        #expect(after != before, "deleting a row of \(key) went unnoticed")
        #expect(after.differences(from: before).map { $0.components(separatedBy: ":")[0] } == [key])
      }
      if !["account", "application", "onboarding_event", "kindergarten"].contains(where: { key == "registry.sqlite › \($0)" }) {
        outsideTheOldFour += 1
      }
    }
    // The old fingerprint would have missed every one of these.
    #expect(outsideTheOldFour >= 10, "only \(outsideTheOldFour) non-empty tables outside the old four")
  }

  @Test("a denied call that also wrote outside the old four tables is caught; its own audit entry is not a change")
  func deniedCallThatWrites() async throws {
    try await withDistrict { district in
      let username = District.user(.principal)
      let token = try await district.login(username).token
      let before = try await district.fingerprint()
      // A call the principal may not make: the interceptor refuses it and audits the refusal.
      let error = await #expect(throws: RPCError.self) {
        try await withPEMISClient(district.address, token: token) { client in
          _ = try await Pemis_V1_Deadlines.Client(wrapping: client).startTerm(.with {
            $0.term = "t-\(UniqueNumbers.next())"
            $0.startsOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
          })
        }
      }
      #expect(error?.code == .permissionDenied)
      // On its own, the denial leaves only its audit entry, which the fingerprint leaves out.
      #expect(try await district.fingerprint(auditThrough: before.auditHead) == before)
      #expect(try await district.auditEntries(after: before.auditHead).map(\.result) == ["PERMISSION_DENIED"])
      // Now as if the refused call had written anyway — in the registry outside the four tables
      // the old fingerprint read, and in a shard, whose file names were all it looked at.
      try await district.registry.setMeta("leaked", "1")
      _ = try await KindergartenDataFixtures.seedClass(District.kindergartenB)(district)
      let after = try await district.fingerprint(auditThrough: before.auditHead)
      let changed = after.differences(from: before).map { $0.components(separatedBy: ":")[0] }
      #expect(changed.contains("registry.sqlite › registry_meta"))
      #expect(changed.contains("shards/\(District.kindergartenB).sqlite › class"))
      // What the old fingerprint compared is all unchanged: it would have passed this call.
      let old = ["account", "application", "onboarding_event", "kindergarten"].map { "registry.sqlite › \($0)" }
      #expect(old.allSatisfy { after.tables[$0] == before.tables[$0] } && after.files == before.files)
    }
  }
}
