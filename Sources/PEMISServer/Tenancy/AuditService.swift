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
      let page = try Page(request.page)
      if request.fromMs > 0 && request.toMs > 0 && request.toMs < request.fromMs {
        throw RPCError(code: .invalidArgument, message: "to_ms: must not be before from_ms")
      }
      var query = Registry.AuditQuery(
        kindergartenCode: request.kindergartenCode.isEmpty ? nil : request.kindergartenCode,
        username: request.username.isEmpty ? nil : request.username,
        fromMs: request.fromMs > 0 ? request.fromMs : nil,
        toMs: request.toMs > 0 ? request.toMs : nil)
      if caller.scope == .ownKindergarten {
        // The principal audits the own kindergarten (Art. 12(一)2): its entries only.
        query.kindergartenCode = caller.kindergarten?.rawValue ?? "-"
      }
      if let ownership = caller.scope.ownershipFilter {
        // Held to scope: only entries about kindergartens of that ownership.
        let (kindergartens, _) = try await tenancy.registry.kindergartens(ownership: ownership, offset: 0, limit: Int.max)
        query.kindergartenScope = Set(kindergartens.map(\.code))
      }
      let (entries, total) = try await tenancy.registry.auditEntries(query, offset: page.offset, limit: page.limit)
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
        $0.page = page.info(total: total, returned: entries.count)
      }
    }
  }
}
