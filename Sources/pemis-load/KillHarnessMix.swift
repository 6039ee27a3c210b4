import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISServer
import PEMISStore
import PEMISWire
import SwiftProtobuf

/// The work the kill harness mixes between SIGKILLs (`--mix`).
enum HarnessWork: String, CaseIterable, Sendable {
  case transfers, enroll, `import`, depart, keyChange = "key-change"

  static func parse(_ text: String) throws -> [HarnessWork] {
    let kinds = try text.split(separator: ",").map { name in
      guard let kind = HarnessWork(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
        throw ValidationError("--mix: \(name) is none of \(allCases.map(\.rawValue).joined(separator: ","))")
      }
      return kind
    }
    guard !kinds.isEmpty else { throw ValidationError("--mix: name at least one kind") }
    return kinds
  }
}

/// What the mixed clients asked for and what the server acknowledged, over the whole run. An
/// operation a kill interrupted is neither: it is resolved at the end from the shards, by the
/// record number its client chose (new children get synthetic IDs no one else uses).
actor MixLedger {
  private(set) var nextChild: Int
  /// Record number → synthetic child index, of every child an enrollment or import tried to make.
  private(set) var attemptedNew: [String: Int] = [:]
  private(set) var acknowledgedNew: Set<String> = []
  private(set) var acknowledgedDepartures: Set<String> = []
  /// Record number → the name an acknowledged key-information change gave it.
  private(set) var acknowledgedNames: [String: String] = [:]
  /// Record number → names asked for after its last acknowledged change (a kill may have let
  /// one through unacknowledged).
  private(set) var namesAttemptedSinceAcknowledged: [String: [String]] = [:]
  private(set) var acknowledged: [String: Int] = [:]

  func attemptRename(_ record: String, _ name: String) { namesAttemptedSinceAcknowledged[record, default: []].append(name) }

  init(firstNew: Int) { nextChild = firstNew }

  func newChildren(_ count: Int) -> [Int] {
    let first = nextChild
    nextChild += count
    for i in first..<nextChild { attemptedNew["G" + SyntheticChildren.child(i).idNumber] = i }
    return Array(first..<nextChild)
  }

  func ack(_ kind: HarnessWork, new: [String] = [], departed: String? = nil, renamed: (String, String)? = nil) {
    acknowledged[kind.rawValue, default: 0] += 1
    acknowledgedNew.formUnion(new)
    if let departed { acknowledgedDepartures.insert(departed) }
    if let (record, name) = renamed {
      acknowledgedNames[record] = name
      namesAttemptedSinceAcknowledged[record] = nil
    }
  }
}

/// Mixed clients: each picks a kind of work from the mix, over the children of a shared pool.
struct MixDriver: Sendable {
  let transfers: TransferDriver
  let mix: [HarnessWork]
  let ledger: MixLedger
  let password: String

  var pool: ChildPool { transfers.pool }
  var sessions: Sessions { transfers.sessions }
  static func code(_ ordinal: Int) -> String { TransferDriver.code(ordinal) }

  func metadata(_ username: String, _ address: ServerAddress) async throws -> Metadata {
    ["authorization": "Bearer \(try await administrators.token(username, address))"]
  }
  let administrators: AccountTokens

  /// One client until `stop()` says so.
  func client(number: Int, address: ServerAddress, stop: @escaping @Sendable () -> Bool) async -> TransferDriver.Outcome {
    var outcome = TransferDriver.Outcome()
    var sequence = 0
    while !stop() {
      do {
        try await withPEMISClient(address) { client in
          let transferClient = Pemis_V1_Transfers.Client(wrapping: client)
          let children = Pemis_V1_ChildRecords.Client(wrapping: client)
          while !stop() {
            let kind = mix.randomElement()!
            let k = transfers.kindergartens
            switch kind {
            case .transfers:
              guard let (child, from) = await pool.take() else { return }
              var to = Int.random(in: 0..<(k - 1))
              if to >= from { to += 1 }
              sequence += 1
              let id = "T-\(transfers.run)-m\(number)-\(sequence)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
              let record = "G" + SyntheticChildren.child(child).idNumber
              _ = try await transferClient.transferOut(
                .with {
                  $0.recordNumber = record
                  $0.toKindergartenCode = Self.code(to)
                  $0.transferID = id
                }, metadata: try await metadata("p" + Self.code(from), address))
              _ = try await transferClient.transferIn(
                .with {
                  $0.transferID = id
                  $0.classID = "C000\(1 + child % 3)"
                }, metadata: try await metadata("p" + Self.code(to), address))
              outcome.transfers += 1
              await ledger.ack(.transfers)
              await pool.put(child, at: to)

            case .enroll:
              let at = Int.random(in: 0..<k)
              let child = await ledger.newChildren(1)[0]
              let c = SyntheticChildren.child(child)
              _ = try await children.enrollChild(
                .with {
                  $0.child = Self.proto(c)
                  $0.classID = "C000\(1 + child % 3)"
                }, metadata: try await metadata("a" + Self.code(at), address))
              await ledger.ack(.enroll, new: ["G" + c.idNumber])
              await pool.put(child, at: at)

            case .import:
              let at = Int.random(in: 0..<k)
              let made = await ledger.newChildren(Int.random(in: 2...4))
              var text = ChildTemplate.headerLine + "\n"
              for i in made {
                let c = SyntheticChildren.child(i)
                text += [
                  c.name, c.gender.rawValue, c.birthDate.description, "resident_id", c.idNumber, "CHN", "01", c.division, c.division, "resident",
                  "none", "healthy", "no", c.guardianName, c.guardianRelation, c.phone, "", "", "", "2026-09-01", "C000\(1 + i % 3)",
                ].joined(separator: ",") + "\n"
              }
              let bytes = Data(text.utf8)
              let created = try await children.importChildren(
                metadata: try await metadata("a" + Self.code(at), address),
                requestProducer: { writer in try await writer.write(.with { $0.chunk = bytes }) },
                onResponse: { response in
                  var created = -1
                  for try await event in response.messages { if case .result(let r) = event.event { created = Int(r.created) } }
                  return created
                })
              guard created == made.count else { throw HarnessRefusal("import created \(created) of \(made.count)") }
              await ledger.ack(.import, new: made.map { "G" + SyntheticChildren.child($0).idNumber })
              for i in made { await pool.put(i, at: at) }

            case .depart:
              guard let (child, at) = await pool.take() else { return }
              let record = "G" + SyntheticChildren.child(child).idNumber
              let death = Int.random(in: 0..<4) == 0
              _ = try await children.recordAccidentalDeparture(
                .with {
                  $0.recordNumber = record
                  $0.kind = death ? "death" : "injury"
                  $0.evidence = death ? "death certificate" : "hospital report"
                }, metadata: try await metadata("a" + Self.code(at), address))
              await ledger.ack(.depart, departed: record)

            case .keyChange:
              guard let (child, at) = await pool.take() else { return }
              let record = "G" + SyntheticChildren.child(child).idNumber
              let name = String(SyntheticChildren.surnames.randomElement()!) + String(SyntheticChildren.given.randomElement()!)
                + String(SyntheticChildren.given.randomElement()!)
              await ledger.attemptRename(record, name)
              let request = try await children.requestKeyChange(
                .with {
                  $0.recordNumber = record
                  $0.name = name
                  $0.fields = ["name"]
                  $0.evidence = "household register page"
                  $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 10 }
                }, metadata: try await metadata("a" + Self.code(at), address))
              _ = try await children.decideKeyChange(
                .with {
                  $0.id = request.id
                  $0.approve = true
                }, metadata: try await metadata("p" + Self.code(at), address))
              await ledger.ack(.keyChange, renamed: (record, name))
              await pool.put(child, at: at)
            }
          }
        }
      } catch let error as RPCError {
        // The child in hand stays aside: where it is now is the server's to say.
        outcome.errors[error.code.grpcName, default: 0] += 1
        try? await Task.sleep(for: .milliseconds(50))
      } catch {
        outcome.errors["\(type(of: error))", default: 0] += 1
        try? await Task.sleep(for: .milliseconds(50))
      }
    }
    return outcome
  }

  func drive(address: ServerAddress, clients: Int, stop: @escaping @Sendable () -> Bool) async -> TransferDriver.Outcome {
    await withTaskGroup(of: TransferDriver.Outcome.self) { group in
      for n in 0..<clients { group.addTask { await client(number: n, address: address, stop: stop) } }
      var total = TransferDriver.Outcome()
      for await outcome in group {
        total.transfers += outcome.transfers
        total.errors.merge(outcome.errors, uniquingKeysWith: +)
      }
      return total
    }
  }

  static func proto(_ c: SyntheticChildren.Child) -> Pemis_V1_Child {
    .with {
      $0.name = c.name
      $0.gender = c.gender.rawValue
      $0.birthDate = .with {
        $0.year = Int32(c.birthDate.year)
        $0.month = Int32(c.birthDate.month)
        $0.day = Int32(c.birthDate.day)
      }
      $0.idDocumentType = "resident_id"
      $0.idDocumentNumber = c.idNumber
      $0.nationality = "CHN"
      $0.ethnicity = "01"
      $0.birthPlace = c.division
      $0.householdRegister = c.division
      $0.householdType = "resident"
      $0.hmtStatus = "none"
      $0.health = "healthy"
      $0.guardians = [.with { $0.name = c.guardianName; $0.relation = c.guardianRelation; $0.phone = c.phone }]
      $0.entryDate = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
    }
  }
}

/// An answer that is not what the operation asked for: the client sets the child aside.
struct HarnessRefusal: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Session tokens by username (principals p<code> and administrators a<code>), logged in on
/// first use; sessions outlive restarts.
actor AccountTokens {
  let password: String
  private var tokens: [String: String] = [:]
  init(password: String) { self.password = password }

  func token(_ username: String, _ address: ServerAddress) async throws -> String {
    if let token = tokens[username] { return token }
    let token = try await Sessions.login(address: address, username: username, password: password)
    tokens[username] = token
    return token
  }
}

extension KillHarness {
  /// Administrator accounts a<code> beside the seeded principals, offline before the first
  /// start: a key-information change is requested by one account and approved by another.
  static func seedAdministrators(dataDirectory: String, kindergartens: Int, password: String) async throws {
    let registry = try Registry(directory: dataDirectory, keys: try DataKeys.forDataDirectory(dataDirectory))
    let hash = try ServerSecrets.hashPassword(password, costLog2: 10)
    let now = Int64(Date().timeIntervalSince1970)
    for k in 0..<kindergartens {
      let code = TransferDriver.code(k)
      var account = AccountRecord(
        username: "a\(code)", role: .administrator, kindergartenCode: code, displayName: "administrator \(code)", passwordHash: hash, createdAt: now)
      account.mustChangePassword = false
      try await registry.createAccount(account)
    }
  }

  /// Every record of every shard: its states (one per shard that holds it) and its data.
  static func records(dataDirectory: String, kindergartens: Int) async throws -> [String: [(code: String, state: ChildState, name: String)]] {
    let shards = try ShardPool(directory: (dataDirectory as NSString).appendingPathComponent("shards"), keys: try DataKeys.forDataDirectory(dataDirectory))
    var result: [String: [(code: String, state: ChildState, name: String)]] = [:]
    for k in 0..<kindergartens {
      let code = TransferDriver.code(k)
      for row in try await shards.shard(try InstitutionCode(validating: code)).allChildren() {
        result[row.recordNumber, default: []].append((code, row.state, row.data.name))
      }
    }
    return result
  }
}
