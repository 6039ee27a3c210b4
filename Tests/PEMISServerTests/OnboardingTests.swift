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

@Suite("Onboarding rejections")
struct OnboardingTests {
  /// Runs `body` as `role`: with `token` when given (a session opened before a fingerprint was
  /// taken, so the call itself is all that can change the data), else logged in fresh.
  func onboarding<R: Sendable>(
    _ district: District, _ role: Role, token: String? = nil,
    _ body: (Pemis_V1_Onboarding.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    if let token {
      return try await withPEMISClient(district.address, token: token) { client in try await body(Pemis_V1_Onboarding.Client(wrapping: client)) }
    }
    return try await district.as(role) { client in try await body(Pemis_V1_Onboarding.Client(wrapping: client)) }
  }

  /// A session for `role`, opened now.
  func token(_ district: District, _ role: Role) async throws -> String {
    try await district.login(District.user(role)).token
  }

  @Test("an invalid form is refused as a whole, each field and rule named, in the message and the trailer")
  func invalidForm() async throws {
    try await withDistrict { district in
      var form = District.form("", .public)
      form.property = "borrowed"
      form.openingDate = .with { $0.year = 2020; $0.month = 1; $0.day = 1 }
      let trailerBox = LockedBox<Pemis_V1_FieldViolations?>(nil)
      let token = try await token(district, .preschoolOffice)
      let before = try await district.fingerprint()
      let error = await failure {
        _ = try await withPEMISClient(district.address, token: token) { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).submitApplication(
            .with { $0.form = form }, options: .defaults
          ) { response in
            if case .failure(let error) = response.accepted,
              let bytes = error.metadata[binaryValues: "pemis-field-violations-bin"].first(where: { _ in true })
            {
              trailerBox.value = try? Pemis_V1_FieldViolations(serializedBytes: bytes)
            }
            return try response.message
          }
        }
      }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.contains("form.name: is required") == true)
      #expect(error?.message.contains("form.opening_date: must not be before the approval date") == true)
      #expect(trailerBox.value?.violations.map(\.field) == ["form.name", "form.opening_date", "form.property"])
      #expect(try await district.fingerprint(auditThrough: before.auditHead) == before)
    }
  }

  @Test("steps out of order are refused naming the state, and change nothing")
  func outOfOrder() async throws {
    try await withDistrict { district in
      let id = try await district.application(.public, to: .submitted)
      let planning = try await token(district, .planningOffice)
      let admin = try await token(district, .districtAdmin)
      let before = try await district.fingerprint()
      let early = await failure {
        _ = try await onboarding(district, .planningOffice, token: planning) { try await $0.admitKindergarten(.with {
          $0.applicationID = id
          $0.institutionCode = "1112000555"
        }) }
      }
      #expect(early?.code == .failedPrecondition)
      #expect(early?.message == "application_id: cannot admit: the application is submitted; it must be approved")
      let issue = await failure {
        _ = try await onboarding(district, .districtAdmin, token: admin) { try await $0.issueAccounts(.with {
          $0.applicationID = id
          $0.principalUsername = "p.early"
          $0.principalName = "x"
          $0.administratorUsername = "a.early"
          $0.administratorName = "y"
        }) }
      }
      #expect(issue?.code == .failedPrecondition)
      #expect(try await district.fingerprint(auditThrough: before.auditHead) == before)
      // A kindergarten that is not admitted has no accounts and no shard.
      #expect(try await district.registry.account("p.early") == nil)
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: district.server.tenancy.shards.directory)
          .filter { $0.hasSuffix(".sqlite") }.sorted() == ["\(District.kindergartenA).sqlite", "\(District.kindergartenB).sqlite"])
      #expect(try await district.registry.kindergartens(ownership: nil, offset: 0, limit: 10).total == 2)
    }
  }

  @Test("returning needs a reason; the reason is kept and shown")
  func returnNeedsReason() async throws {
    try await withDistrict { district in
      let id = try await district.application(.private, to: .submitted)
      let error = await failure {
        _ = try await onboarding(district, .vocationalOffice) { try await $0.reviewApplication(.with { $0.applicationID = id }) }
      }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.hasPrefix("reason:") == true)
      let returned = try await onboarding(district, .vocationalOffice) { try await $0.reviewApplication(.with {
        $0.applicationID = id
        $0.reason = "缺少办园许可证复印件"
      }) }
      #expect(returned.state == .returned)
      #expect(returned.returnReason == "缺少办园许可证复印件")
      #expect(returned.history.map(\.step) == ["submit", "return"])
      #expect(returned.history.last?.actor == District.user(.vocationalOffice))
      // Ownership cannot change on resubmission.
      let switched = await failure {
        _ = try await onboarding(district, .vocationalOffice) { try await $0.resubmitApplication(.with {
          $0.applicationID = id
          $0.form = District.form("改为公办", .public)
        }) }
      }
      #expect(switched?.code == .permissionDenied || switched?.code == .invalidArgument)
    }
  }

  @Test("institution codes: format checked, never assigned twice")
  func institutionCodes() async throws {
    try await withDistrict { district in
      let first = try await district.application(.public, to: .approved)
      let second = try await district.application(.public, to: .approved)
      for bad in ["12345", "../../../x", "2112000101", "11120001ab"] {
        let error = await failure {
          _ = try await onboarding(district, .planningOffice) { try await $0.admitKindergarten(.with {
            $0.applicationID = first
            $0.institutionCode = bad
          }) }
        }
        #expect(error?.code == .invalidArgument, "\(bad)")
        #expect(error?.message.hasPrefix("institution_code:") == true)
      }
      _ = try await onboarding(district, .planningOffice) { try await $0.admitKindergarten(.with {
        $0.applicationID = first
        $0.institutionCode = "1112000777"
      }) }
      let duplicate = await failure {
        _ = try await onboarding(district, .planningOffice) { try await $0.admitKindergarten(.with {
          $0.applicationID = second
          $0.institutionCode = "1112000777"
        }) }
      }
      #expect(duplicate?.code == .alreadyExists)
      // An active kindergarten's code is taken too.
      let active = await failure {
        _ = try await onboarding(district, .planningOffice) { try await $0.admitKindergarten(.with {
          $0.applicationID = second
          $0.institutionCode = District.kindergartenA
        }) }
      }
      #expect(active?.code == .alreadyExists)
    }
  }

  @Test("issuing accounts with a taken username leaves no account, no kindergarten and no shard behind")
  func issueAccountsRollsBack() async throws {
    try await withDistrict { district in
      let id = try await district.application(.private, to: .committed, code: "1112000888")
      let admin = try await token(district, .districtAdmin)
      let before = try await district.fingerprint()
      let error = await failure {
        _ = try await onboarding(district, .districtAdmin, token: admin) { try await $0.issueAccounts(.with {
          $0.applicationID = id
          $0.principalUsername = "new.principal"
          $0.principalName = "园长"
          $0.administratorUsername = District.user(.administrator)  // taken
          $0.administratorName = "管理员"
        }) }
      }
      #expect(error?.code == .alreadyExists)
      #expect(try await district.fingerprint(auditThrough: before.auditHead) == before)
      #expect(!district.server.tenancy.shards.exists(try InstitutionCode(validating: "1112000888")))
      #expect(try await district.registry.application(id)?.state == .committed)
      // And it can be done right afterwards.
      let done = try await onboarding(district, .districtAdmin) { try await $0.issueAccounts(.with {
        $0.applicationID = id
        $0.principalUsername = "new.principal"
        $0.principalName = "园长"
        $0.administratorUsername = "new.admin"
        $0.administratorName = "管理员"
      }) }
      #expect(done.application.state == .active)
      #expect(district.server.tenancy.shards.exists(try InstitutionCode(validating: "1112000888")))
    }
  }

  @Test("every call that changes state or reads records is audited, denials included")
  func audited() async throws {
    try await withDistrict { district in
      let id = try await district.application(.public, to: .submitted)
      _ = await failure {
        _ = try await onboarding(district, .vocationalOffice) { try await $0.reviewApplication(.with {
          $0.applicationID = id
          $0.approve = true
        }) }
      }
      _ = await failure { _ = try await district.login(District.user(.principal), "not-the-password-1") }
      let (entries, _) = try await district.registry.auditEntries(.init(), offset: 0, limit: 10_000)
      let submit = entries.last { $0.method == "/pemis.v1.Onboarding/SubmitApplication" && $0.targets.contains(id) }
      #expect(submit?.username == District.user(.preschoolOffice))
      #expect(submit?.role == "preschool_office")
      #expect(submit?.result == "OK")
      let denied = entries.last { $0.method == "/pemis.v1.Onboarding/ReviewApplication" && $0.targets.contains(id) }
      #expect(denied?.username == District.user(.vocationalOffice))
      #expect(denied?.result == "PERMISSION_DENIED")
      let login = entries.last { $0.method == "/pemis.v1.Session/Login" }
      #expect(login?.username == District.user(.principal))
      #expect(login?.result == "UNAUTHENTICATED")
      #expect(!entries.contains { $0.method.contains("Health") })
      if case .intact = try await district.registry.verifyAuditChain() {} else { Issue.record("chain broken") }

      // District staff query the log by kindergarten, account and time range.
      let byUser = try await district.as(.districtAdmin) { client in
        try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.username = District.user(.vocationalOffice) })
      }
      #expect(!byUser.entries.isEmpty)
      #expect(byUser.entries.allSatisfy { $0.username == District.user(.vocationalOffice) })
      let future = try await district.as(.districtAdmin) { client in
        try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.fromMs = (district.clock.now + 3600) * 1000 })
      }
      #expect(future.entries.isEmpty)
      // The Vocational Office sees only entries about private kindergartens.
      let vocational = try await district.as(.vocationalOffice) { client in
        try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.init())
      }
      #expect(vocational.entries.allSatisfy { $0.kindergartenCode == District.kindergartenB })
    }
  }

  @Test(
    "commitment and account issue refuse incomplete requests, naming the field",
    arguments: [
      ("commitment.signatory", 0), ("commitment.signed_on", 1), ("principal_username", 2), ("administrator_username", 3),
      ("principal_name", 4),
    ])
  func incompleteSteps(field: String, variant: Int) async throws {
    try await withDistrict { district in
      let id = try await district.application(.public, to: variant < 2 ? .admitted : .committed)
      let office = try await token(district, .preschoolOffice)
      let admin = try await token(district, .districtAdmin)
      let before = try await district.fingerprint()
      let error = await failure {
        switch variant {
        case 0, 1:
          _ = try await onboarding(district, .preschoolOffice, token: office) { try await $0.recordCommitment(.with {
            $0.applicationID = id
            $0.commitment = .with {
              $0.signatory = variant == 0 ? "  " : "王丽"
              $0.signedOn = variant == 1 ? .with { $0.year = 2024; $0.month = 2; $0.day = 30 } : .with { $0.year = 2024; $0.month = 9; $0.day = 2 }
            }
          }) }
        default:
          _ = try await onboarding(district, .districtAdmin, token: admin) { try await $0.issueAccounts(.with {
            $0.applicationID = id
            $0.principalUsername = variant == 2 ? "Bad Name" : "good.principal"
            $0.principalName = variant == 4 ? "" : "园长"
            $0.administratorUsername = variant == 3 ? "good.principal" : "good.admin"
            $0.administratorName = "管理员"
          }) }
        }
      }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.hasPrefix(field) == true, "\(error?.message ?? "")")
      #expect(try await district.fingerprint(auditThrough: before.auditHead) == before)
    }
  }
}
