internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.District`: counts across kindergartens, always within the caller's scope (the
/// Vocational & Adult Education Office sees private kindergartens only).
struct DistrictService: Pemis_V1_District.SimpleServiceProtocol {
  let tenancy: Tenancy

  static func counts<K: Comparable>(_ dictionary: [K: Int], key: (K) -> String) -> [Pemis_V1_Count] {
    dictionary.sorted { $0.key < $1.key }.map { k, v in
      .with {
        $0.key = key(k)
        $0.count = Int64(v)
      }
    }
  }

  static func counts(_ s: KindergartenSummary, transfers: Int, cases: Int, classes: [KindergartenSummary.ClassSize]) -> Pemis_V1_SummaryCounts {
    .with {
      $0.children = Int64(s.children)
      $0.byGender = counts(s.byGender) { $0 }
      $0.byDocumentType = counts(s.byDocumentType) { $0 }
      $0.byAge = counts(s.byAge) { String($0) }
      $0.byGrade = counts(s.byGrade) { $0 }
      $0.staffByPost = counts(s.staffByPost) { $0 }
      $0.pendingTransfers = Int64(transfers)
      $0.openDuplicateCases = Int64(cases)
      $0.classes = Int64(classes.count)
      $0.classesOutsideNorm = Int64(classes.filter { !$0.withinNorm }.count)
    }
  }

  func getDistrictSummary(request: Pemis_V1_DistrictSummaryRequest, context: ServerContext) async throws -> Pemis_V1_DistrictSummaryResponse {
    try await handling {
      let caller = try Caller.required()
      let codes = try request.kindergartenCodes.map { try InstitutionCode(validating: $0).rawValue }
      let summary = try await tenancy.router.districtSummary(codes: codes.isEmpty ? nil : codes, ownership: caller.scope.ownershipFilter)
      let total = summary.total
      let classes = summary.rows.flatMap(\.summary.classes)
      // Transfers and cases are counted once each, not once per kindergarten they concern.
      let covered = Set(summary.rows.map(\.kindergarten.code))
      let pending = try await tenancy.registry.openTransferCount(among: covered)
      let openCases = try await tenancy.registry.unresolvedCaseCount(among: covered)
      AuditTargets.add("district-summary kindergartens=\(summary.rows.count)")
      return .with {
        $0.kindergartens = Int64(summary.rows.count)
        $0.total = Self.counts(total, transfers: pending, cases: openCases, classes: classes)
        $0.childrenByOwnership = Self.counts(Dictionary(uniqueKeysWithValues: summary.childrenByOwnership.map { ($0.key.rawValue, $0.value) })) { $0 }
        $0.agesOn = summary.agesOn.proto
        $0.shardsRead = Int64(summary.shardsRead)
        if request.byKindergarten {
          $0.rows = summary.rows.map { row in
            .with {
              $0.kindergartenCode = row.kindergarten.code
              $0.name = row.kindergarten.name
              $0.ownership = row.kindergarten.ownership.rawValue
              $0.counts = Self.counts(row.summary, transfers: row.pendingTransfers, cases: row.openCases, classes: row.summary.classes)
              $0.classes = row.summary.classes.map { c in
                .with {
                  $0.classID = c.id
                  $0.name = c.name
                  $0.grade = c.grade
                  $0.capacity = Int32(c.capacity)
                  $0.children = Int32(c.children)
                  $0.typicalLow = Int32(c.typicalLow)
                  $0.typicalHigh = Int32(c.typicalHigh)
                  $0.withinNorm = c.withinNorm
                }
              }
            }
          }
        }
      }
    }
  }
}
