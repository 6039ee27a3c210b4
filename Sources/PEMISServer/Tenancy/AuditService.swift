internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Audit`: district supervision reads the audit log by kindergarten, account and time.
struct AuditService: Pemis_V1_Audit.SimpleServiceProtocol {
  let tenancy: Tenancy

  func queryAuditLog(
    request: Pemis_V1_QueryAuditLogRequest, context: ServerContext
  ) async throws -> Pemis_V1_QueryAuditLogResponse {
    try await handling {
      let caller = try Caller.required()
      // Pages continue from an entry ("s<sequence>"), not an offset: the log grows by every
      // call, this one included, and an offset would slide.
      var cursor: Int64?
      if !request.page.pageToken.isEmpty {
        guard request.page.pageToken.hasPrefix("s"), let after = Int64(request.page.pageToken.dropFirst()), after >= 0 else {
          throw RPCError(code: .invalidArgument, message: "page.page_token: not a token this server issued")
        }
        cursor = after
      }
      var pageRequest = request.page
      pageRequest.pageToken = ""
      let page = try Page(pageRequest)
      if request.fromMs > 0 && request.toMs > 0 && request.toMs < request.fromMs {
        throw RPCError(code: .invalidArgument, message: "to_ms: must not be before from_ms")
      }
      var query = Registry.AuditQuery(
        kindergartenCode: request.kindergartenCode.isEmpty ? nil : request.kindergartenCode,
        username: request.username.isEmpty ? nil : request.username,
        fromMs: request.fromMs > 0 ? request.fromMs : nil,
        toMs: request.toMs > 0 ? request.toMs : nil)
      query.newestFirst = !request.oldestFirst
      query.continuingAfter = cursor
      if caller.scope == .ownKindergarten {
        // The principal audits the own kindergarten (Art. 12(一)2): its entries only.
        query.kindergartenCode = caller.kindergarten?.rawValue ?? "-"
      }
      if let ownership = caller.scope.ownershipFilter {
        // Held to scope: only entries about kindergartens of that ownership.
        let (kindergartens, _) = try await tenancy.registry.kindergartens(ownership: ownership, offset: 0, limit: Int.max)
        query.kindergartenScope = Set(kindergartens.map(\.code))
      }
      // One more than the page, to learn whether another follows.
      var (entries, total) = try await tenancy.registry.auditEntries(query, offset: 0, limit: page.limit + 1)
      let more = entries.count > page.limit
      if more { entries.removeLast() }
      return .with {
        $0.entries = entries.map { entry in
          .with {
            $0.sequence = entry.seq ?? 0
            $0.atMs = entry.atMs
            $0.username = entry.username
            $0.role = Role(rawValue: entry.role)?.proto ?? .unspecified
            $0.kindergartenCode = entry.kindergartenCode
            $0.method = entry.method
            $0.targets = entry.targets.isEmpty ? [] : entry.targets.split(separator: ",").map(String.init)
            $0.result = entry.result
            $0.peer = entry.peer
            $0.hash = entry.hash
          }
        }
        $0.page = .with {
          $0.totalCount = Int64(total)
          $0.nextPageToken = more ? "s\(entries.last?.seq ?? 0)" : ""
        }
      }
    }
  }
}
