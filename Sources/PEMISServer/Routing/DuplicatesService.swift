internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Duplicates`: the district duplicate check and its cases.
struct DuplicatesService: Pemis_V1_Duplicates.SimpleServiceProtocol {
  let tenancy: Tenancy
  var router: Router { tenancy.router }

  /// A case's key, masked: ID numbers by the one rule (``IDDocuments/mask(_:)``); a name keeps
  /// its first character.
  static func maskKey(_ kind: ProblemKind, _ key: String) -> String {
    switch kind {
    case .invalidID:
      // "type|number@record number"
      let documentKey = key.lastIndex(of: "@").map { String(key[..<$0]) } ?? key
      return IDDocuments.mask(ChildIndexRecord.documentNumber(ofKey: documentKey))
    case .sameID:
      return IDDocuments.mask(key)
    case .samePerson:
      let parts = key.split(separator: "|").map(String.init)
      guard parts.count == 3 else { return "***" }
      return "\(parts[0].prefix(1))\(String(repeating: "*", count: max(1, parts[0].count - 1)))|\(parts[1])|\(parts[2])"
    }
  }

  /// A case as the caller sees it: each record by its child reference, and by its full number
  /// only to the kindergarten it belongs to, which must tell which of its records to act on.
  func proto(_ record: DuplicateCaseRecord, events: [CaseEventRecord] = []) -> Pemis_V1_DuplicateCase {
    let own = Caller.current?.kindergarten?.rawValue
    let references = tenancy.registry.childReferences
    return .with {
      $0.id = record.id ?? 0
      $0.kind = record.kind.rawValue
      $0.key = Self.maskKey(record.kind, record.key)
      $0.records = record.records.map { r in
        .with {
          $0.kindergartenCode = r.kindergartenCode
          $0.recordNumber = r.kindergartenCode == own ? r.recordNumber : IDDocuments.mask(r.recordNumber)
          $0.childRef = references.reference(r.recordNumber)
        }
      }
      $0.state = record.state.rawValue
      $0.resolution = record.resolution ?? ""
      $0.evidence = record.evidence ?? ""
      $0.openedAt = record.openedAt
      $0.events = events.map { e in
        .with {
          $0.action = e.action
          $0.actor = e.actor
          $0.kindergartenCode = e.kindergartenCode
          $0.note = e.note
          $0.at = e.at
        }
      }
    }
  }

  func sweepDuplicates(request: Pemis_V1_SweepDuplicatesRequest, context: ServerContext) async throws -> Pemis_V1_SweepDuplicatesResponse {
    try await handling {
      let caller = try Caller.required()
      let result = try await router.sweep(by: caller.username)
      AuditTargets.add("sweep opened=\(result.opened) resolved=\(result.resolved)")
      return .with {
        $0.opened = Int32(result.opened)
        $0.stillOpen = Int32(result.unchanged)
        $0.resolved = Int32(result.resolved)
      }
    }
  }

  func listCases(request: Pemis_V1_ListCasesRequest, context: ServerContext) async throws -> Pemis_V1_ListCasesResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      var state: CaseState?
      if !request.state.isEmpty {
        state = CaseState(rawValue: request.state)
        if state == nil { throw RPCError(code: .invalidArgument, message: "state: must be open, evidence or resolved") }
      }
      var code: String? = request.kindergartenCode.isEmpty ? nil : request.kindergartenCode
      if caller.scope == .ownKindergarten { code = caller.kindergarten?.rawValue }
      var scoped: Set<String>?
      if code == nil, let ownership = caller.scope.ownershipFilter {
        scoped = Set(try await tenancy.registry.kindergartens(ownership: ownership, offset: 0, limit: 100_000).kindergartens.map(\.code))
      }
      let (cases, total) = try await tenancy.registry.duplicateCases(
        kindergarten: code, codes: scoped, state: state, offset: page.offset, limit: page.limit)
      return .with {
        $0.cases = cases.map { proto($0) }
        $0.page = page.info(total: total, returned: cases.count)
      }
    }
  }

  /// The case, when the caller may see it: a kindergarten its own cases, the district those of
  /// kindergartens in its scope.
  func visibleCase(_ id: Int64) async throws -> (DuplicateCaseRecord, [CaseEventRecord], Caller) {
    let caller = try Caller.required()
    guard let (record, events) = try await tenancy.registry.duplicateCase(id) else {
      throw RPCError(code: .notFound, message: "id: no duplicate case \(id)")
    }
    if caller.scope == .ownKindergarten {
      guard let own = caller.kindergarten?.rawValue, record.kindergartens.contains(own) else {
        throw RPCError(code: .notFound, message: "id: no duplicate case \(id) of this kindergarten")
      }
    } else if let ownership = caller.scope.ownershipFilter {
      var visible = false
      for code in record.kindergartens where try await tenancy.registry.kindergarten(code)?.ownership == ownership { visible = true }
      guard visible else { throw RPCError(code: .notFound, message: "id: no duplicate case \(id) in your scope") }
    }
    return (record, events, caller)
  }

  func getCase(request: Pemis_V1_GetCaseRequest, context: ServerContext) async throws -> Pemis_V1_DuplicateCase {
    try await handling {
      let (record, events, _) = try await visibleCase(request.id)
      AuditTargets.add("case:\(request.id)")
      return proto(record, events: events)
    }
  }

  func resolveCase(request: Pemis_V1_ResolveCaseRequest, context: ServerContext) async throws -> Pemis_V1_DuplicateCase {
    try await handling {
      let caller = try Caller.required()
      let code = try tenancy.requestedKindergarten(request.kindergartenCode, caller: caller).rawValue
      let result: DuplicateCaseRecord
      switch request.action {
      case "delete":
        let record = try await router.resolveByDeleting(request.id, recordNumber: try await fullNumber(request, code: code), at: code, by: caller.username)
        result = record
      case "modified":
        result = try await router.resolveByModifying(request.id, at: code, by: caller.username)
      case "evidence":
        let evidence = request.evidence.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !evidence.isEmpty, evidence.count <= 300 else {
          throw RPCError(code: .invalidArgument, message: "evidence: what the parents provided, at most 300 characters")
        }
        result = try await router.submitEvidence(request.id, evidence: evidence, at: code, by: caller.username)
      default:
        throw RPCError(code: .invalidArgument, message: "action: must be delete, modified or evidence")
      }
      AuditTargets.add("case:\(request.id) \(request.action)")
      let events = try await tenancy.registry.duplicateCase(request.id)?.1 ?? []
      return proto(result, events: events)
    }
  }

  /// The full record number of one of the kindergarten's records in the case (a masked one from
  /// the case will do).
  func fullNumber(_ request: Pemis_V1_ResolveCaseRequest, code: String) async throws -> String {
    guard !request.recordNumber.isEmpty else { throw RPCError(code: .invalidArgument, message: "record_number: which record to delete") }
    let shard = try await tenancy.shards.shard(try InstitutionCode(validating: code))
    return try await tenancy.recordNumber(request.recordNumber, in: shard)
  }

  func arbitrateCase(request: Pemis_V1_ArbitrateCaseRequest, context: ServerContext) async throws -> Pemis_V1_DuplicateCase {
    try await handling {
      let caller = try Caller.required()
      let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
      if !request.accept && note.isEmpty {
        throw RPCError(code: .invalidArgument, message: "note: a rejection says why")
      }
      let record = try await router.arbitrate(request.id, accept: request.accept, note: note, by: caller.username)
      AuditTargets.add("case:\(request.id) \(request.accept ? "accepted" : "rejected")")
      return proto(record, events: try await tenancy.registry.duplicateCase(request.id)?.1 ?? [])
    }
  }
}
