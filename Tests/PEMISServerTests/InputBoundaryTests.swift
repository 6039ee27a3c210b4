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

/// Protobuf bytes of one length-delimited field (a string, bytes or message field), raw: the
/// bytes need not be valid UTF-8, which no Swift string could carry.
private func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] {
  func varint(_ value: Int) -> [UInt8] {
    var value = UInt64(value)
    var out: [UInt8] = []
    while value >= 0x80 {
      out.append(UInt8(value & 0x7F) | 0x80)
      value >>= 7
    }
    return out + [UInt8(value)]
  }
  return varint(number << 3 | 2) + varint(bytes.count) + bytes
}

/// "é" cut in half, then "(": not UTF-8.
private let invalidUTF8: [UInt8] = [0x61, 0xC3, 0x28, 0x62]

extension District {
  /// The audit chain must be intact: anything else fails the test.
  func expectAuditIntact(sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let verification = try await registry.verifyAuditChain()
    guard case .intact = verification else {
      Issue.record("audit chain: \(verification)", sourceLocation: sourceLocation)
      return
    }
  }

  /// Bytes of the registry's files (the database and its write-ahead log).
  func registryBytes() throws -> Int {
    let manager = FileManager.default
    return try [registry.path, registry.path + "-wal"].filter { manager.fileExists(atPath: $0) }.reduce(0) {
      $0 + ((try manager.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0)
    }
  }
}

@Suite("The input boundary: every string from the network is checked once, before any use", .serialized)
struct InputBoundaryTests {
  static let admin = District.user(.districtAdmin)

  func login(_ district: District, _ username: String, _ password: String = District.password) async -> RPCError? {
    await failure { _ = try await district.login(username, password) }
  }

  @Test("an unauthenticated login with a NUL is refused and `audit verify` stays intact")
  func nulKeepsTheAuditChain() async throws {
    try await withDistrict { district in
      let head = try await district.auditEntries(after: 0).last?.seq ?? 0
      let error = try #require(await login(district, "nobody\u{0}junk", "whatever-1"))
      #expect(error.code == .invalidArgument, "\(error)")
      #expect(error.message.hasPrefix("username: "), "\(error.message)")
      #expect(error.message.contains("U+0000"), "\(error.message)")
      try await district.expectAuditIntact()
      // The refusal is audited, without what the caller sent.
      let entries = try await district.auditEntries(after: head)
      let entry = try #require(entries.last)
      #expect(entry.method == "/pemis.v1.Session/Login" && entry.result == "INVALID_ARGUMENT")
      #expect(entry.username.isEmpty && entry.targets.isEmpty)
    }
  }

  @Test("the audit log stores escaped, bounded values and hashes exactly what it stores")
  func auditStoresWhatItHashes() async throws {
    try await withDistrict { district in
      let hostile = "x\u{0}y\n\u{1B}[31mforged line\\n" + String(repeating: "长", count: 1_000_000)
      let written = try await district.registry.appendAudit(
        AuditRecord(
          atMs: 1, username: hostile, role: "r\u{0}", kindergartenCode: hostile, method: "/m\r\n", targets: [hostile],
          result: "OK", peer: hostile))
      try await district.expectAuditIntact()
      let stored = try #require(try await district.auditEntries(after: (written.seq ?? 1) - 1).first)
      #expect(stored == written)
      for value in [stored.username, stored.role, stored.kindergartenCode, stored.method, stored.targets, stored.peer] {
        #expect(!value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(value.prefix(80))")
      }
      #expect(stored.username.hasPrefix("x\\u{0}y\\n\\u{1B}[31mforged line\\\\n长"))
      #expect(stored.username.utf8.count <= AuditRecord.storedFieldLimits.username)
      #expect(stored.targets.utf8.count <= AuditRecord.storedFieldLimits.targets)
      #expect(stored.username.hasSuffix("bytes]"))
    }
  }

  @Test("a username with a NUL and junk after it does not log in as the prefix")
  func nulUsernameIsNotThePrefix() async throws {
    try await withDistrict { district in
      let user = District.user(.financeOffice)
      let error = try #require(await login(district, user + "\u{0}junk"))
      #expect(error.code == .invalidArgument, "\(error)")
      #expect(error.message.hasPrefix("username: "))
      // Nor with any other control character, and the account itself still works.
      for junk in ["\u{1}x", "\n", "\u{7F}", "\u{85}"] {
        #expect(await login(district, user + junk)?.code == .invalidArgument, "\(junk.unicodeScalars.map(\.value))")
      }
      #expect(await login(district, user) == nil)
    }
  }

  @Test("line breaks, terminal escapes and bidi overrides: refused in one-line fields, line breaks kept in notes")
  func controlCharacters() async throws {
    try await withDistrict { district in
      let newline = try #require(await login(district, "wang\nli"))
      #expect(newline.code == .invalidArgument && newline.message.hasPrefix("username: "), "\(newline)")
      #expect(newline.message.contains("换行"))
      try await district.as(.districtAdmin) { client in
        let kindergartens = Pemis_V1_Kindergartens.Client(wrapping: client)
        let escape = await failure {
          _ = try await kindergartens.getKindergarten(.with { $0.kindergartenCode = District.kindergartenA + "\u{1B}[2J" })
        }
        #expect(escape?.code == .invalidArgument, "\(String(describing: escape))")
        #expect(escape?.message.hasPrefix("kindergarten_code: ") == true, "\(String(describing: escape))")
        #expect(escape?.message.contains("U+001B") == true)
        let accounts = Pemis_V1_Accounts.Client(wrapping: client)
        let bidi = await failure {
          _ = try await accounts.createAccount(.with {
            $0.username = "new.clerk"
            $0.role = .preschoolOffice
            $0.displayName = "王\u{202E}丽"
          })
        }
        #expect(bidi?.code == .invalidArgument && bidi?.message.hasPrefix("display_name: ") == true, "\(String(describing: bidi))")
      }
      // A reason is a note: its line break passes the boundary; the call fails on what it names.
      try await district.as(.principal) { client in
        let leave = await failure {
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).leaveChild(.with {
            $0.recordNumber = "G000000000000000000"
            $0.reason = "moved away\nto Beijing"
          })
        }
        #expect(leave != nil && leave?.message.hasPrefix("reason") == false, "\(String(describing: leave))")
        #expect(leave?.message.hasPrefix("record_number") == true, "\(String(describing: leave))")
      }
      try await district.expectAuditIntact()
    }
  }

  @Test("over-long fields are refused by kind; 20 calls with a 3 MiB code leave the registry small")
  func overLong() async throws {
    try await withDistrict { district in
      let huge = String(repeating: "1", count: 3 * 1024 * 1024)
      let before = try district.registryBytes()
      let head = try await district.auditEntries(after: 0).last?.seq ?? 0
      for _ in 0..<20 {
        // No session: the boundary comes before authentication.
        let error = await failure {
          _ = try await withPEMISClient(district.address) { client in
            try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.with { $0.kindergartenCode = huge })
          }
        }
        #expect(error?.code == .invalidArgument, "\(String(describing: error?.code))")
        #expect(error?.message.hasPrefix("kindergarten_code: ") == true)
        #expect(error?.message.contains("\(huge.utf8.count)") == true)
        #expect((error?.message.utf8.count ?? 0) < 1024)
      }
      let grown = try district.registryBytes() - before
      #expect(grown < 1024 * 1024, "the registry grew by \(grown) bytes")
      let entries = try await district.auditEntries(after: head)
      #expect(entries.count == 20)
      let widest = try await district.registry.writer.read { db in
        try Int.fetchOne(
          db,
          sql: """
            SELECT max(length(CAST(username AS BLOB)) + length(CAST(role AS BLOB)) + length(CAST(kindergartenCode AS BLOB))
              + length(CAST(method AS BLOB)) + length(CAST(targets AS BLOB)) + length(CAST(result AS BLOB))
              + length(CAST(peer AS BLOB))) FROM audit_log
            """) ?? 0
      }
      #expect(widest <= 4096, "an audit row holds \(widest) bytes of text")
      // A password is bounded too, before anything hashes it.
      let password = try #require(await login(district, District.user(.financeOffice), String(repeating: "密", count: 200)))
      #expect(password.code == .invalidArgument && password.message.hasPrefix("password: "), "\(password)")
      try await district.expectAuditIntact()
    }
  }

  @Test("invalid UTF-8 in a string field is INVALID_ARGUMENT naming the rule, with or without a session")
  func invalidUTF8OnTheWire() async throws {
    try await withDistrict { district in
      let login = field(1, invalidUTF8) + field(2, Array("Pemis-test-2026".utf8))
      let anonymous = try await withPEMISClient(district.address) { client in
        await rawCall(client, method: "/pemis.v1.Session/Login", message: login)
      }
      #expect(anonymous?.code == .invalidArgument, "\(String(describing: anonymous))")
      #expect(anonymous?.message.hasPrefix("request: ") == true && anonymous?.message.contains("UTF-8") == true)
      // Nested: SubmitApplicationRequest.form (1) → ApplicationForm.name (1).
      let submit = field(1, field(1, invalidUTF8))
      let token = try await district.login(District.user(.preschoolOffice)).token
      let authenticated = try await withPEMISClient(district.address, token: token) { client in
        await rawCall(client, method: "/pemis.v1.Onboarding/SubmitApplication", message: submit)
      }
      #expect(authenticated?.code == .invalidArgument, "\(String(describing: authenticated))")
      #expect(authenticated?.message.contains("UTF-8") == true)
      try await district.expectAuditIntact()
    }
  }

  @Test("nested messages, repeated fields and every message of a stream are checked")
  func nestedRepeatedStreamed() async throws {
    try await withDistrict({ $0.diagnostics = true }) { district in  // Echo is diagnostics
      try await district.as(.preschoolOffice) { client in
        let error = await failure {
          var form = District.form("幼儿园", .public)
          form.address = "天津市\u{0}滨海新区"
          _ = try await Pemis_V1_Onboarding.Client(wrapping: client).submitApplication(.with { $0.form = form })
        }
        #expect(error?.code == .invalidArgument && error?.message.hasPrefix("form.address: ") == true, "\(String(describing: error))")
      }
      try await district.as(.principal) { client in
        let records = Pemis_V1_ChildRecords.Client(wrapping: client)
        let repeated = await failure {
          _ = try await records.updateChild(.with {
            $0.recordNumber = "G000000000000000000"
            $0.fields = ["health", "nationality\u{7}"]
          })
        }
        #expect(repeated?.message.hasPrefix("fields[1]: ") == true, "\(String(describing: repeated))")
        let members = await failure {
          _ = try await Pemis_V1_KindergartenData.Client(wrapping: client).setLeadershipGroup(.with {
            $0.members = [.with { $0.name = "赵敏"; $0.role = "leader" }, .with { $0.name = "李\u{1B}]0;pwned\u{7}"; $0.role = "hr" }]
          })
        }
        #expect(members?.message.hasPrefix("members[1].name: ") == true, "\(String(describing: members))")
        // The second message of an import: its chunk is over the bytes bound.
        let streamed = await failure {
          try await records.importChildren(
            requestProducer: { writer in
              try await writer.write(.with { $0.chunk = Data((ChildImportTests.header + "\r\n").utf8) })
              try await writer.write(.with { $0.chunk = Data(repeating: 0x41, count: InputText.maxBytesField + 1) })
            },
            onResponse: { response in for try await _ in response.messages {} })
        }
        #expect(streamed?.code == .invalidArgument, "\(String(describing: streamed))")
        #expect(streamed?.message.hasPrefix("message[1].chunk: ") == true, "\(String(describing: streamed))")
      }
      // An open, unaudited method is behind the boundary too.
      let echo = await failure {
        _ = try await withPEMISClient(district.address) { client in
          try await Pemis_V1_Echo.Client(wrapping: client).get(.with { $0.payload = Data(count: InputText.maxBytesField + 1) })
        }
      }
      #expect(echo?.code == .invalidArgument && echo?.message.hasPrefix("payload: ") == true, "\(String(describing: echo))")
      try await district.expectAuditIntact()
    }
  }

  @Test("the session token in the metadata is bounded and visible ASCII")
  func sessionToken() async throws {
    try await withDistrict { district in
      for token in [String(repeating: "a", count: 300), "abc\u{7F}def"] {
        let error = await failure {
          _ = try await withPEMISClient(district.address, token: token) { client in
            try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
          }
        }
        // The boundary ("authorization: …") or, for a character gRPC forbids in any text value,
        // the wire's metadata rule ("metadata key 'authorization': …") before it: both name it.
        #expect(error?.code == .invalidArgument && error?.message.contains("authorization") == true, "\(String(describing: error))")
      }
      try await district.expectAuditIntact()
    }
  }

  @Test(
    "a malformed institution code is INVALID_ARGUMENT naming the field and the rule, never UNKNOWN",
    arguments: ["", "12", "abcdefghij", "2112000101", "１１１２０００１０１", "1112000101 ", String(repeating: "1", count: 64)])
  func malformedCodes(_ code: String) async throws {
    try await withDistrict { district in
      try await district.as(.districtAdmin) { client in
        let calls: [(String, () async throws -> Void)] = [
          ("GetKindergarten", { _ = try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.with { $0.kindergartenCode = code }) }),
          ("GetProfile", { _ = try await Pemis_V1_KindergartenData.Client(wrapping: client).getProfile(.with { $0.kindergartenCode = code }) }),
          ("ListTransfers", { _ = try await Pemis_V1_Transfers.Client(wrapping: client).listTransfers(.with { $0.kindergartenCode = code }) }),
          ("GetDistrictSummary", { _ = try await Pemis_V1_District.Client(wrapping: client).getDistrictSummary(.with { $0.kindergartenCodes = [code] }) }),
          ("QueryAuditLog", { _ = try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.kindergartenCode = code }) }),
          ("ListAccounts", { _ = try await Pemis_V1_Accounts.Client(wrapping: client).listAccounts(.with { $0.kindergartenCode = code }) }),
          ("ListCases", { _ = try await Pemis_V1_Duplicates.Client(wrapping: client).listCases(.with { $0.kindergartenCode = code }) }),
          ("ListObligations", { _ = try await Pemis_V1_Deadlines.Client(wrapping: client).listObligations(.with { $0.kindergartenCode = code }) }),
          ("CreateAccount", {
            _ = try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
              $0.username = "new.teacher"
              $0.role = .classLeader
              $0.kindergartenCode = code
              $0.displayName = "新老师"
            })
          }),
        ]
        // For these an empty code means "every kindergarten in scope".
        let all: Set<String> = ["GetDistrictSummary", "QueryAuditLog", "ListTransfers", "ListAccounts", "ListCases", "ListObligations"]
        for (name, call) in calls {
          let error = await failure(call)
          if code.isEmpty, all.contains(name) { continue }
          let status = try #require(error, "\(name) with '\(code)' succeeded")
          #expect(status.code == .invalidArgument, "\(name) '\(code)': \(status)")
          #expect(!status.message.isEmpty, "\(name) '\(code)'")
          #expect(status.message.contains("code"), "\(name) '\(code)': \(status.message)")
        }
      }
    }
  }

  @Test("pemis audit query prints escaped values: a stored newline or terminal escape cannot forge a line")
  func auditQueryEscapes() async throws {
    try await withDistrict { district in
      // A row as an older server could have stored it, written straight into the database.
      try await district.registry.writer.write { db in
        try db.execute(
          sql: """
            INSERT INTO audit_log (atMs, username, role, kindergartenCode, method, targets, result, peer, prevHash, hash)
            VALUES (?, ?, '', '', '/pemis.v1.Session/Login', ?, 'OK', '', '', '')
            """,
          arguments: [district.clock.now * 1000, "evil\n999  2026-01-01 00:00  forged", "a\u{1B}[2Jb"])
      }
      let config = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-config-\(UUID())")
      defer { try? FileManager.default.removeItem(at: config) }
      let token = try await district.login(Self.admin).token
      let environment = ["PEMIS_CONFIG_DIR": config.path]
      try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
      let session = SavedSession(server: district.address.description, token: token, username: Self.admin, expiresAt: Int64.max)
      try JSONEncoder().encode(session).write(to: config.appendingPathComponent("session.json"))
      let arguments = ["audit", "query", "--server", district.address.description, "--plaintext", "--limit", "500"]
      // run() waits on a thread of its own: the server in this process needs the cooperative pool.
      let output = try await run(productsDirectory.appendingPathComponent("pemis"), arguments, environment: environment)
      #expect(output.status == 0, "\(output.stderr)")
      #expect(!output.stdout.contains("\u{1B}"))
      #expect(output.stdout.contains("evil\\n999"))
      #expect(output.stdout.contains("a\\u{1B}[2Jb"))
      #expect(!output.stdout.split(separator: "\n").contains { $0.hasPrefix("999") })
    }
  }

  @Test("every string field of the protos has a kind; none falls to the unclassified default")
  func everyFieldClassified() async throws {
    let directory = repositoryRoot.appendingPathComponent("Protos/pemis/v1")
    var unclassified: [String] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".proto") {
      let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
      for line in text.split(separator: "\n") {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        // "string name = 1;" or "repeated string name = 1;", not a comment.
        guard let type = words.firstIndex(where: { $0 == "string" || $0 == "bytes" }), type <= 1, type + 1 < words.count,
          words.first?.hasPrefix("//") == false
        else { continue }
        let name = words[type + 1]
        if words[type] == "string" && InputText.kind(ofField: name) == .unclassified { unclassified.append("\(file): \(name)") }
      }
    }
    #expect(unclassified.isEmpty, "give these fields a kind in InputText.fieldKinds: \(unclassified)")
  }
}
