internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Kindergartens`: the registry's view of a kindergarten joined with its own shard's.
struct KindergartensService: Pemis_V1_Kindergartens.SimpleServiceProtocol {
  let tenancy: Tenancy

  private func proto(_ record: KindergartenRecord, shard: TenantShard.Info?) -> Pemis_V1_Kindergarten {
    .with {
      $0.institutionCode = record.code
      $0.name = record.name
      $0.ownership = record.ownership.proto
      $0.applicationID = record.applicationId
      $0.activatedAt = record.activatedAt
      if let shard {
        $0.shardSchemaVersion = Int32(shard.schemaVersion)
        $0.shardCreatedAt = shard.createdAt
      }
    }
  }

  func getKindergarten(
    request: Pemis_V1_GetKindergartenRequest, context: ServerContext
  ) async throws -> Pemis_V1_Kindergarten {
    try await handling {
      let caller = try Caller.required()
      // The interceptor has resolved and checked the code; an empty one means the caller's own.
      let code = try tenancy.requestedKindergarten(request.kindergartenCode, caller: caller)
      guard let record = try await tenancy.registry.kindergarten(code.rawValue) else {
        throw RPCError(code: .notFound, message: "kindergarten_code: no kindergarten \(code)")
      }
      let shard = try await tenancy.shards.shard(code)
      return proto(record, shard: try await shard.info())
    }
  }

  func listKindergartens(
    request: Pemis_V1_ListKindergartensRequest, context: ServerContext
  ) async throws -> Pemis_V1_ListKindergartensResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      var ownership = Ownership(request.ownership)
      if let limit = caller.scope.ownershipFilter {
        // Held to scope: asking for the other kind yields nothing rather than an error.
        if let asked = ownership, asked != limit {
          return .with { $0.page = page.info(total: 0, returned: 0) }
        }
        ownership = limit
      }
      let (records, total) = try await tenancy.registry.kindergartens(ownership: ownership, offset: page.offset, limit: page.limit)
      return .with {
        $0.kindergartens = records.map { proto($0, shard: nil) }
        $0.page = page.info(total: total, returned: records.count)
      }
    }
  }
}
