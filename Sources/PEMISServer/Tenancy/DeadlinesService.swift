internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Deadlines`: the regulation's time limits as obligations (docs/DEADLINES.md).
struct DeadlinesService: Pemis_V1_Deadlines.SimpleServiceProtocol {
  let tenancy: Tenancy

  func proto(_ record: ObligationRecord, today: CalendarDate) -> Pemis_V1_Obligation {
    .with {
      $0.id = record.id ?? 0
      $0.kindergartenCode = record.kindergartenCode
      $0.kind = record.kind.rawValue
      $0.subject = record.subject
      $0.triggeredOn = (CalendarDate(iso: record.triggeredOn) ?? CalendarDate(year: 1970, month: 1, day: 1)).proto
      if let due = record.dueOn.flatMap(CalendarDate.init(iso:)) { $0.dueOn = due.proto }
      switch record.status(today: today) {
      case .due: $0.status = "due"
      case .overdue: $0.status = "overdue"
      case .done(let onTime): $0.status = onTime ? "done" : "done_late"
      }
      $0.doneBy = record.doneBy ?? ""
      $0.doneAt = record.doneAt ?? 0
      $0.article = record.kind.rule.article
      $0.summary = record.kind.rule.summary
      $0.workingDays = Int32(record.kind.rule.workingDays)
    }
  }

  func startTerm(request: Pemis_V1_StartTermRequest, context: ServerContext) async throws -> Pemis_V1_StartTermResponse {
    try await handling {
      let caller = try Caller.required()
      let term = request.term
      guard (4...32).contains(term.count),
        term.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
      else {
        throw RPCError(code: .invalidArgument, message: "term: 4-32 characters of a-z, 0-9 and '-', like 2026-autumn")
      }
      let starts = CalendarDate(request.startsOn)
      guard starts.isValid else { throw RPCError(code: .invalidArgument, message: "starts_on: is not a valid date") }
      let due = try ObligationKind.termVerification.due(after: starts, in: tenancy.calendar)
      let count = try await tenancy.registry.startTerm(name: term, startsOn: starts, dueOn: due, by: caller.username, at: tenancy.now())
      AuditTargets.add("term:\(term)")
      return .with {
        $0.term = term
        $0.startsOn = starts.proto
        $0.verificationDueOn = due.proto
        $0.kindergartens = Int32(count)
      }
    }
  }

  static func filter(_ text: String) throws -> Registry.ObligationFilter {
    switch text {
    case "": .all
    case "open": .open
    case "due": .due
    case "overdue": .overdue
    case "done": .done
    default: throw RPCError(code: .invalidArgument, message: "status: must be empty, open, due, overdue or done")
    }
  }

  func listObligations(
    request: Pemis_V1_ListObligationsRequest, context: ServerContext
  ) async throws -> Pemis_V1_ListObligationsResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      let code = request.kindergartenCode.isEmpty ? caller.kindergarten?.rawValue : request.kindergartenCode
      guard let code else { throw RPCError(code: .invalidArgument, message: "kindergarten_code: required for district accounts") }
      try await tenancy.openMonthlyAudits()
      let today = tenancy.today
      let (records, total) = try await tenancy.registry.obligations(
        kindergarten: code, filter: try Self.filter(request.status), today: today, offset: page.offset, limit: page.limit)
      return .with {
        $0.obligations = records.map { proto($0, today: today) }
        $0.page = page.info(total: total, returned: records.count)
        $0.today = today.proto
      }
    }
  }

  func listOverdue(request: Pemis_V1_ListOverdueRequest, context: ServerContext) async throws -> Pemis_V1_ListObligationsResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      var ownership = Ownership(request.ownership)
      if let limit = caller.scope.ownershipFilter {
        if let asked = ownership, asked != limit { return .with { $0.page = page.info(total: 0, returned: 0) } }
        ownership = limit
      }
      try await tenancy.openMonthlyAudits()
      let today = tenancy.today
      let (records, total) = try await tenancy.registry.obligations(
        kindergarten: nil, filter: .overdue, today: today, ownership: ownership, offset: page.offset, limit: page.limit)
      return .with {
        $0.obligations = records.map { proto($0, today: today) }
        $0.page = page.info(total: total, returned: records.count)
        $0.today = today.proto
      }
    }
  }

  /// An area can be declared complete only once it holds what it must: a valid profile, a class,
  /// an active staff member, a year of finance information.
  private func checkEntered(_ area: DataArea, code: InstitutionCode) async throws {
    let shard = try await tenancy.shards.shard(code)
    switch area {
    case .basic:
      guard let profile = try await shard.profile(), profile.profile.violations().isEmpty else {
        throw RPCError(code: .failedPrecondition, message: "area: basic information is not entered yet (pemis data profile set)")
      }
    case .classes:
      guard try await !shard.classes().isEmpty else {
        throw RPCError(code: .failedPrecondition, message: "area: no class is entered yet (pemis data class create)")
      }
    case .staff:
      guard try await shard.staff().contains(where: { $0.data.active }) else {
        throw RPCError(code: .failedPrecondition, message: "area: no staff member is entered yet (pemis data staff create)")
      }
    case .finance:
      guard try await !shard.financeYears().isEmpty else {
        throw RPCError(code: .failedPrecondition, message: "area: no finance year is entered yet (pemis data finance set)")
      }
    }
  }

  func completeArea(request: Pemis_V1_CompleteAreaRequest, context: ServerContext) async throws -> Pemis_V1_CompleteAreaResponse {
    try await handling {
      let caller = try Caller.required()
      guard let area = DataArea(rawValue: request.area) else {
        throw RPCError(code: .invalidArgument, message: "area: must be basic, classes, staff or finance")
      }
      let code = try tenancy.requestedKindergarten(request.kindergartenCode, caller: caller)
      try await checkEntered(area, code: code)
      let today = tenancy.today
      let done = try await tenancy.registry.completeObligations(
        kindergarten: code.rawValue, kinds: [.initialData, .termVerification],
        subject: { $0 == area.rawValue || $0.hasSuffix(":\(area.rawValue)") }, by: caller.username, at: tenancy.now(), on: today)
      guard !done.isEmpty else {
        throw RPCError(code: .failedPrecondition, message: "area: nothing is owed for \(area.rawValue) now (no open entry or re-verification)")
      }
      return .with { $0.completed = done.map { proto($0, today: today) } }
    }
  }
}
