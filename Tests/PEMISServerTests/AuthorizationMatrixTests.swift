import Foundation
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
import PEMISStore

typealias Client = GRPCClient<PEMISWireClientTransport>

/// One method against one target, with the roles that may call it written out by hand from the
/// regulation (not derived from the policy table, so a wrong table entry fails here).
struct MatrixCase: Sendable, CustomTestStringConvertible {
  var name: String
  var allowed: Set<Role>
  /// Prepares what the call needs (an application in the right state, a target account); returns
  /// the ids the call uses.
  var setup: @Sendable (District) async throws -> String = { _ in "" }
  var call: @Sendable (Client, String) async throws -> Void

  var testDescription: String { name }

  /// The method's path as the server names it ("/pemis.v1.Session/WhoAmI"): the case's name up
  /// to the first space.
  var method: String { "/pemis.v1." + name.split(separator: " ")[0] }

  /// The district offices and the district administrator: not the export approver, who may
  /// decide exports and nothing else.
  static let district: Set<Role> = [.preschoolOffice, .vocationalOffice, .planningOffice, .financeOffice, .districtAdmin]
  static let kindergartenA = Set(Role.kindergarten)
  static let a = District.kindergartenA
  static let b = District.kindergartenB

  static func onboarding(_ ownership: Pemis_V1_Ownership, _ state: OnboardingState) -> @Sendable (District) async throws -> String {
    { try await $0.application(ownership, to: state) }
  }

  static func staffAccount(_ code: String) -> @Sendable (District) async throws -> String {
    { district in
      let name = "t\(UniqueNumbers.next())"
      try await district.seedAccount(name, .administrator, kindergarten: code)
      return name
    }
  }

  static func onboarding(_ client: Client) -> Pemis_V1_Onboarding.Client<PEMISWireClientTransport> { .init(wrapping: client) }
  static func data(_ client: Client) -> Pemis_V1_KindergartenData.Client<PEMISWireClientTransport> { .init(wrapping: client) }
  static func accounts(_ client: Client) -> Pemis_V1_Accounts.Client<PEMISWireClientTransport> { .init(wrapping: client) }
  static func children(_ client: Client) -> Pemis_V1_ChildRecords.Client<PEMISWireClientTransport> { .init(wrapping: client) }
  static func transfers(_ client: Client) -> Pemis_V1_Transfers.Client<PEMISWireClientTransport> { .init(wrapping: client) }

  static var all: [MatrixCase] {
    var cases: [MatrixCase] = [
      MatrixCase(name: "Session/WhoAmI", allowed: Set(Role.allCases)) { client, _ in
        _ = try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      },
      MatrixCase(name: "Session/ChangePassword (new one too short)", allowed: Set(Role.allCases)) { client, _ in
        _ = try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
          $0.currentPassword = District.password
          $0.newPassword = "short"
        })
      },
      MatrixCase(name: "Session/Logout", allowed: Set(Role.allCases)) { client, _ in
        _ = try await Pemis_V1_Session.Client(wrapping: client).logout(.init())
      },
      MatrixCase(name: "Onboarding/ListApplications", allowed: district) { client, _ in
        _ = try await onboarding(client).listApplications(.init())
      },
      MatrixCase(name: "Deadlines/StartTerm", allowed: [.preschoolOffice, .districtAdmin]) { client, _ in
        _ = try await Pemis_V1_Deadlines.Client(wrapping: client).startTerm(.with {
          $0.term = "t-\(UniqueNumbers.next())"
          $0.startsOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
        })
      },
      MatrixCase(name: "Deadlines/ListOverdue", allowed: district) { client, _ in
        _ = try await Pemis_V1_Deadlines.Client(wrapping: client).listOverdue(.init())
      },
      MatrixCase(name: "Duplicates/SweepDuplicates", allowed: [.preschoolOffice, .districtAdmin]) { client, _ in
        _ = try await Pemis_V1_Duplicates.Client(wrapping: client).sweepDuplicates(.init())
      },
      MatrixCase(name: "Duplicates/ArbitrateCase", allowed: [.preschoolOffice]) { client, _ in
        _ = try await Pemis_V1_Duplicates.Client(wrapping: client).arbitrateCase(.with {
          $0.id = 1
          $0.accept = true
        })
      },
      // Ending a transfer that cannot go on is the Preschool Education Office's (and the
      // district administrator's), never one side's.
      MatrixCase(name: "Transfers/AbortTransfer", allowed: [.preschoolOffice, .districtAdmin]) { client, _ in
        _ = try await Pemis_V1_Transfers.Client(wrapping: client).abortTransfer(.with {
          $0.transferID = "T-unknown-1"
          $0.reason = "the parents withdrew"
        })
      },
      MatrixCase(name: "District/GetDistrictSummary", allowed: district) { client, _ in
        _ = try await Pemis_V1_District.Client(wrapping: client).getDistrictSummary(.init())
      },
      MatrixCase(name: "Kindergartens/ListKindergartens", allowed: district) { client, _ in
        _ = try await Pemis_V1_Kindergartens.Client(wrapping: client).listKindergartens(.init())
      },
      // Exports (Art. 20): the approvers decide (the handler names which one for each export);
      // only requesters download. An unknown id is NOT_FOUND past the door.
      MatrixCase(name: "Exports/DecideExport", allowed: [.preschoolOffice, .vocationalOffice, .exportApprover]) { client, _ in
        _ = try await Pemis_V1_Exports.Client(wrapping: client).decideExport(.with {
          $0.id = "E999999"
          $0.approve = true
        })
      },
      // A kindergarten account is refused any export not its own, even one that does not exist.
      MatrixCase(name: "Exports/DownloadExport", allowed: [.preschoolOffice, .vocationalOffice]) { client, _ in
        _ = try await Pemis_V1_Exports.Client(wrapping: client).downloadExport(.with { $0.id = "E999999" })
      },
    ]
    for (code, ownership) in [(a, Pemis_V1_Ownership.public), (b, .private)] {
      let isPublic = ownership == .public
      let office: Role = isPublic ? .preschoolOffice : .vocationalOffice
      let label = isPublic ? "public kindergarten A" : "private kindergarten B"
      // Child records (Art. 8(2), 9(2), 12, 15–18): the offices that verify children's data and
      // the kindergarten's principal, administrator and class leaders.
      let childReaders: Set<Role> = isPublic ? [.principal, .administrator, .classLeader, .preschoolOffice] : [.preschoolOffice, .vocationalOffice]
      // Transfers, duplicate cases, key-change requests: the offices that act on them, the
      // district administrator who runs the sweeps, the principal and the administrator.
      let childOversight: Set<Role> =
        isPublic ? [.principal, .administrator, .preschoolOffice, .districtAdmin] : [.preschoolOffice, .vocationalOffice, .districtAdmin]
      cases += [
        MatrixCase(
          name: "Accounts/CreateAccount in \(label)", allowed: isPublic ? [.districtAdmin, .principal] : [.districtAdmin]
        ) { client, _ in
          _ = try await accounts(client).createAccount(.with {
            $0.username = "n\(UniqueNumbers.next())"
            $0.role = .classLeader
            $0.kindergartenCode = code
            $0.displayName = "班长"
          })
        },
        MatrixCase(
          name: "Accounts/DisableAccount in \(label)", allowed: isPublic ? [.districtAdmin, .principal] : [.districtAdmin],
          setup: staffAccount(code)
        ) { client, username in _ = try await accounts(client).disableAccount(.with { $0.username = username }) },
        MatrixCase(
          name: "Accounts/EnableAccount in \(label)", allowed: isPublic ? [.districtAdmin, .principal] : [.districtAdmin],
          setup: staffAccount(code)
        ) { client, username in _ = try await accounts(client).enableAccount(.with { $0.username = username }) },
        MatrixCase(
          name: "Accounts/ResetPassword in \(label)", allowed: isPublic ? [.districtAdmin, .principal] : [.districtAdmin],
          setup: staffAccount(code)
        ) { client, username in _ = try await accounts(client).resetPassword(.with { $0.username = username }) },
        MatrixCase(name: "Accounts/UnsealAccount in \(label)", allowed: [.districtAdmin], setup: staffAccount(code)) {
          client, username in _ = try await accounts(client).unsealAccount(.with { $0.username = username })
        },
        MatrixCase(
          name: "Accounts/ListAccounts of \(label)", allowed: isPublic ? [.districtAdmin, .principal] : [.districtAdmin]
        ) { client, _ in _ = try await accounts(client).listAccounts(.with { $0.kindergartenCode = code }) },
        MatrixCase(name: "Onboarding/SubmitApplication \(ownership)", allowed: [office, .districtAdmin]) { client, _ in
          _ = try await onboarding(client).submitApplication(.with { $0.form = District.form("新园", ownership) })
        },
        MatrixCase(name: "Onboarding/ReviewApplication \(ownership)", allowed: [office], setup: onboarding(ownership, .submitted)) {
          client, id in
          _ = try await onboarding(client).reviewApplication(.with {
            $0.applicationID = id
            $0.approve = true
          })
        },
        MatrixCase(
          name: "Onboarding/ResubmitApplication \(ownership)", allowed: [office, .districtAdmin],
          setup: onboarding(ownership, .returned)
        ) { client, id in
          _ = try await onboarding(client).resubmitApplication(.with {
            $0.applicationID = id
            $0.form = District.form("更正", ownership)
          })
        },
        MatrixCase(
          name: "Onboarding/AdmitKindergarten \(ownership)", allowed: [.planningOffice], setup: onboarding(ownership, .approved)
        ) { client, id in
          _ = try await onboarding(client).admitKindergarten(.with {
            $0.applicationID = id
            $0.institutionCode = "11128\(UniqueNumbers.next(digits: 5))"
          })
        },
        MatrixCase(
          name: "Onboarding/RecordCommitment \(ownership)", allowed: [office, .districtAdmin],
          setup: onboarding(ownership, .admitted)
        ) { client, id in
          _ = try await onboarding(client).recordCommitment(.with {
            $0.applicationID = id
            $0.commitment = .with {
              $0.signatory = "园长"
              $0.signedOn = .with { $0.year = 2024; $0.month = 9; $0.day = 2 }
            }
          })
        },
        MatrixCase(
          name: "Onboarding/IssueAccounts \(ownership)", allowed: [.districtAdmin], setup: onboarding(ownership, .committed)
        ) { client, id in
          let n = UniqueNumbers.next()
          _ = try await onboarding(client).issueAccounts(.with {
            $0.applicationID = id
            $0.principalUsername = "p\(n)"
            $0.principalName = "园长"
            $0.administratorUsername = "a\(n)"
            $0.administratorName = "管理员"
          })
        },
        MatrixCase(
          name: "Onboarding/GetApplication \(ownership)",
          allowed: isPublic ? [.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin] : district,
          setup: onboarding(ownership, .submitted)
        ) { client, id in _ = try await onboarding(client).getApplication(.with { $0.applicationID = id }) },
        MatrixCase(
          name: "Kindergartens/GetKindergarten \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in
          _ = try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.with { $0.kindergartenCode = code })
        },
        MatrixCase(
          name: "Deadlines/ListObligations of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in
          _ = try await Pemis_V1_Deadlines.Client(wrapping: client).listObligations(.with { $0.kindergartenCode = code })
        },
        MatrixCase(
          name: "Deadlines/CompleteArea of \(label)",
          allowed: isPublic ? [.principal, .administrator, .financeStaff] : []
        ) { client, _ in
          _ = try await Pemis_V1_Deadlines.Client(wrapping: client).completeArea(.with {
            $0.kindergartenCode = code
            $0.area = "basic"
          })
        },
        MatrixCase(
          name: "KindergartenData/GetProfile of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in _ = try await data(client).getProfile(.with { $0.kindergartenCode = code }) },
        MatrixCase(
          name: "KindergartenData/UpdateProfile of \(label)", allowed: isPublic ? [.principal, .administrator, .financeStaff] : []
        ) { client, _ in
          _ = try await data(client).updateProfile(.with {
            $0.kindergartenCode = code
            $0.profile = KindergartenDataFixtures.profile
          })
        },
        MatrixCase(
          name: "KindergartenData/ListClasses of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in _ = try await data(client).listClasses(.with { $0.kindergartenCode = code }) },
        MatrixCase(name: "KindergartenData/CreateClass in \(label)", allowed: isPublic ? [.principal, .administrator] : []) {
          client, _ in
          _ = try await data(client).createClass(.with {
            $0.kindergartenCode = code
            $0.class = KindergartenDataFixtures.newClass("班\(UniqueNumbers.next())")
          })
        },
        MatrixCase(
          name: "KindergartenData/UpdateClass in \(label)", allowed: isPublic ? [.principal, .administrator] : [],
          setup: KindergartenDataFixtures.seedClass(code)
        ) { client, id in
          var updated = KindergartenDataFixtures.newClass("改\(UniqueNumbers.next())")
          updated.classID = id
          _ = try await data(client).updateClass(.with {
            $0.kindergartenCode = code
            $0.class = updated
          })
        },
        MatrixCase(
          name: "KindergartenData/DeleteClass in \(label)", allowed: isPublic ? [.principal, .administrator] : [],
          setup: KindergartenDataFixtures.seedClass(code)
        ) { client, id in
          _ = try await data(client).deleteClass(.with {
            $0.kindergartenCode = code
            $0.classID = id
          })
        },
        MatrixCase(
          name: "KindergartenData/ListStaff of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in _ = try await data(client).listStaff(.with { $0.kindergartenCode = code }) },
        MatrixCase(
          name: "KindergartenData/CreateStaff in \(label)", allowed: isPublic ? [.principal, .administrator, .financeStaff] : []
        ) { client, _ in
          _ = try await data(client).createStaff(.with {
            $0.kindergartenCode = code
            $0.staff = KindergartenDataFixtures.teacher
          })
        },
        MatrixCase(
          name: "KindergartenData/UpdateStaff in \(label)", allowed: isPublic ? [.principal, .administrator, .financeStaff] : []
        ) { client, _ in
          var staff = KindergartenDataFixtures.teacher
          staff.staffID = "S0001"
          _ = try await data(client).updateStaff(.with {
            $0.kindergartenCode = code
            $0.staff = staff
          })
        },
        MatrixCase(
          name: "KindergartenData/GetHistory of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in
          _ = try await data(client).getHistory(.with {
            $0.kindergartenCode = code
            $0.record = "profile"
          })
        },
        MatrixCase(
          name: "KindergartenData/GetHistory of finance:2026 of \(label)",
          allowed: isPublic ? [.principal, .administrator, .financeStaff, .preschoolOffice, .planningOffice, .financeOffice, .districtAdmin] : district
        ) { client, _ in
          _ = try await data(client).getHistory(.with {
            $0.kindergartenCode = code
            $0.record = "finance:2026"
          })
        },
        MatrixCase(
          // Child records: not the Planning or Finance offices, the district administrator or
          // finance/HR staff (Art. 12(三)2). The class leader's child is in none of its classes
          // (NOT_FOUND, past the door).
          name: "KindergartenData/GetHistory of a child of \(label)", allowed: childReaders
        ) { client, _ in
          _ = try await data(client).getHistory(.with {
            $0.kindergartenCode = code
            $0.record = "child:G" + KindergartenDataFixtures.childID
          })
        },
        MatrixCase(
          // Art. 12(三): class leaders have no part in finance information.
          name: "KindergartenData/GetFinance of \(label)",
          allowed: isPublic ? [.principal, .administrator, .financeStaff, .preschoolOffice, .planningOffice, .financeOffice, .districtAdmin] : district
        ) { client, _ in
          _ = try await data(client).getFinance(.with {
            $0.kindergartenCode = code
            $0.year = 2026
          })
        },
        MatrixCase(name: "KindergartenData/PutFinance of \(label)", allowed: isPublic ? [.principal, .administrator, .financeStaff] : []) {
          client, _ in
          _ = try await data(client).putFinance(.with {
            $0.kindergartenCode = code
            $0.finance = KindergartenDataFixtures.finance
          })
        },
        MatrixCase(
          name: "KindergartenData/ConfirmFinance of \(label)", allowed: [.financeOffice],
          setup: KindergartenDataFixtures.seedFinance(code)
        ) { client, _ in
          _ = try await data(client).confirmFinance(.with {
            $0.kindergartenCode = code
            $0.year = 2026
          })
        },
        MatrixCase(
          name: "KindergartenData/GetLeadershipGroup of \(label)",
          allowed: isPublic ? kindergartenA.union([.preschoolOffice, .planningOffice, .financeOffice, .districtAdmin]) : district
        ) { client, _ in _ = try await data(client).getLeadershipGroup(.with { $0.kindergartenCode = code }) },
        MatrixCase(
          name: "KindergartenData/SetLeadershipGroup of \(label)", allowed: isPublic ? [.principal, .administrator] : []
        ) { client, _ in
          _ = try await data(client).setLeadershipGroup(.with {
            $0.kindergartenCode = code
            $0.members = KindergartenDataFixtures.leadership
            $0.changedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 21 }
          })
        },
        MatrixCase(
          // Class leaders may enroll only into their own classes; this request names none (their
          // case is in ChildRecordsTests.classLeaderScope).
          name: "ChildRecords/EnrollChild in \(label)", allowed: isPublic ? [.principal, .administrator] : []
        ) { client, _ in
          let body = "12011620220315\(UniqueNumbers.next(digits: 3))"
          let id = body + String(IDDocuments.checkCharacter(Array(body))!)
          var child = KindergartenDataFixtures.child(id: id)
          child.gender = (Int(String(body.last!))! % 2 == 1) ? "male" : "female"
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).enrollChild(.with {
            $0.kindergartenCode = code
            $0.child = child
          })
        },
        MatrixCase(name: "ChildRecords/ListChildren of \(label)", allowed: childReaders) { client, _ in _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).listChildren(.with { $0.kindergartenCode = code }) },
        MatrixCase(name: "ChildRecords/GetChild of \(label)", allowed: childReaders) { client, _ in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).getChild(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
          })
        },
        MatrixCase(
          name: "ChildRecords/AssignClass in \(label)", allowed: isPublic ? [.principal, .administrator] : [],
          setup: KindergartenDataFixtures.seedClass(code)
        ) { client, classID in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).assignClass(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.classID = classID
          })
        },
        MatrixCase(
          name: "ChildRecords/PromoteClass in \(label)", allowed: isPublic ? [.principal, .administrator] : [],
          setup: KindergartenDataFixtures.seedClass(code)
        ) { client, classID in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).promoteClass(.with {
            $0.kindergartenCode = code
            $0.classID = classID
          })
        },
        MatrixCase(
          name: "ChildRecords/GraduateClass in \(label)", allowed: isPublic ? [.principal, .administrator] : [],
          setup: KindergartenDataFixtures.seedClass(code)
        ) { client, classID in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).graduateClass(.with {
            $0.kindergartenCode = code
            $0.classID = classID
            $0.preview = true
          })
        },
        MatrixCase(name: "ChildRecords/LeaveChild in \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).leaveChild(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.reason = "moved away"
          })
        },
        MatrixCase(
          name: "ChildRecords/RecordAccidentalDeparture in \(label)", allowed: isPublic ? [.principal, .administrator] : []
        ) { client, _ in
          _ = try await Pemis_V1_ChildRecords.Client(wrapping: client).recordAccidentalDeparture(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.kind = "injury"
            $0.evidence = "hospital report"
          })
        },
        MatrixCase(
          // Class leaders may change children of their own classes; this one is in none (NOT_FOUND).
          name: "ChildRecords/UpdateChild in \(label)", allowed: isPublic ? [.principal, .administrator, .classLeader] : []
        ) { client, _ in
          _ = try await children(client).updateChild(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.fields = ["health"]
            $0.child.health = "other"
          })
        },
        MatrixCase(
          name: "ChildRecords/RequestKeyChange in \(label)", allowed: isPublic ? [.principal, .administrator, .classLeader] : []
        ) { client, _ in
          _ = try await children(client).requestKeyChange(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.name = "张晓明"
            $0.fields = ["name"]
            $0.evidence = "户口簿"
            $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
          })
        },
        MatrixCase(
          name: "ChildRecords/ListKeyChanges of \(label)", allowed: childOversight
        ) { client, _ in _ = try await children(client).listKeyChanges(.with { $0.kindergartenCode = code }) },
        MatrixCase(name: "ChildRecords/DecideKeyChange in \(label)", allowed: isPublic ? [.principal] : []) { client, _ in
          _ = try await children(client).decideKeyChange(.with {
            $0.kindergartenCode = code
            $0.id = 1
            $0.approve = true
          })
        },
        MatrixCase(
          // The month's changes carry the children's values: not the district administrator.
          name: "ChildRecords/GetMonthlyAudit of \(label)",
          allowed: isPublic ? [.principal, .administrator, .preschoolOffice] : [.preschoolOffice, .vocationalOffice]
        ) { client, _ in
          _ = try await children(client).getMonthlyAudit(.with {
            $0.kindergartenCode = code
            $0.month = "2026-09"
          })
        },
        MatrixCase(name: "ChildRecords/SignOffMonth of \(label)", allowed: isPublic ? [.principal] : []) { client, _ in
          _ = try await children(client).signOffMonth(.with {
            $0.kindergartenCode = code
            $0.month = "2026-08"
          })
        },
        MatrixCase(name: "ChildRecords/RecordPaperArchive in \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await children(client).recordPaperArchive(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.parentSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
            $0.checkedBy = "赵敏"
          })
        },
        MatrixCase(name: "ChildRecords/ListPaperArchive of \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await children(client).listPaperArchive(.with { $0.kindergartenCode = code })
        },
        MatrixCase(name: "ChildRecords/RecordPaperShredded in \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await children(client).recordPaperShredded(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.shreddedBy = "赵敏"
          })
        },
        MatrixCase(name: "ChildRecords/ImportChildren into \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          try await children(client).importChildren(
            requestProducer: { writer in
              try await writer.write(.with {
                $0.kindergartenCode = code
                $0.chunk = Data(ChildImportTests.valid.utf8)
              })
            },
            onResponse: { response in for try await _ in response.messages {} })
        },
        MatrixCase(name: "Transfers/TransferOut from \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await transfers(client).transferOut(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
            $0.toKindergartenCode = isPublic ? b : a
          })
        },
        MatrixCase(name: "Transfers/GetTransferArchive at \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await transfers(client).getTransferArchive(.with {
            $0.kindergartenCode = code
            $0.recordNumber = "G" + KindergartenDataFixtures.childID
          })
        },
        MatrixCase(name: "Transfers/TransferIn at \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await transfers(client).transferIn(.with {
            $0.kindergartenCode = code
            $0.transferID = "T-unknown-1"
          })
        },
        MatrixCase(name: "Transfers/CancelTransfer at \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await transfers(client).cancelTransfer(.with {
            $0.kindergartenCode = code
            $0.transferID = "T-unknown-1"
          })
        },
        MatrixCase(name: "Transfers/DeclineTransfer at \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await transfers(client).declineTransfer(.with {
            $0.kindergartenCode = code
            $0.transferID = "T-unknown-1"
            $0.reason = "no place"
          })
        },
        MatrixCase(name: "Transfers/ListTransfers of \(label)", allowed: childOversight) { client, _ in
          _ = try await transfers(client).listTransfers(.with { $0.kindergartenCode = code })
        },
        MatrixCase(name: "Duplicates/ListCases of \(label)", allowed: childOversight) { client, _ in
          _ = try await Pemis_V1_Duplicates.Client(wrapping: client).listCases(.with { $0.kindergartenCode = code })
        },
        MatrixCase(name: "Duplicates/GetCase of \(label)", allowed: childOversight) { client, _ in
          _ = try await Pemis_V1_Duplicates.Client(wrapping: client).getCase(.with {
            $0.kindergartenCode = code
            $0.id = 1
          })
        },
        MatrixCase(name: "Duplicates/ResolveCase in \(label)", allowed: isPublic ? [.principal, .administrator] : []) { client, _ in
          _ = try await Pemis_V1_Duplicates.Client(wrapping: client).resolveCase(.with {
            $0.kindergartenCode = code
            $0.id = 1
            $0.action = "modified"
          })
        },
        MatrixCase(
          name: "Exports/RequestExport of \(label)",
          allowed: isPublic ? [.principal, .administrator, .preschoolOffice] : [.preschoolOffice, .vocationalOffice]
        ) { client, _ in
          _ = try await Pemis_V1_Exports.Client(wrapping: client).requestExport(.with {
            $0.kindergartenCode = code
            $0.purpose = "区教育局年度统计核对"
            $0.recipient = "滨海新区教体局"
            $0.fields = ["gender", "birth_date"]
          })
        },
        MatrixCase(
          name: "Exports/ListExports of \(label)",
          allowed: isPublic ? [.principal, .administrator, .preschoolOffice, .exportApprover] : [.preschoolOffice, .vocationalOffice, .exportApprover]
        ) { client, _ in
          _ = try await Pemis_V1_Exports.Client(wrapping: client).listExports(.with { $0.kindergartenCode = code })
        },
        MatrixCase(
          name: "Audit/QueryAuditLog of \(label)",
          // Art. 12(一)2: the principal audits the own kindergarten.
          allowed: isPublic ? [.districtAdmin, .preschoolOffice, .principal] : [.districtAdmin, .preschoolOffice, .vocationalOffice]
        ) { client, _ in
          _ = try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.kindergartenCode = code })
        },
      ]
    }
    return cases
  }
}

extension MatrixCase {
  /// The cases of one of the matrix's two lanes (every other case, from `lane`).
  static func lane(_ lane: Int) -> [MatrixCase] { all.enumerated().filter { $0.offset % 2 == lane }.map(\.element) }

  /// Without a session the call is UNAUTHENTICATED; each role allowed passes authorization, each
  /// denied gets PERMISSION_DENIED; every refusal leaves exactly its own audit entry and changes
  /// no other row of any table of any file.
  func check() async throws {
    let testCase = self
    try await withDistrict { district in
      // No session first (one server per case for both checks: a second server per case was a
      // tenth of the matrix's time).
      do {
        let target = try await testCase.setup(district)
        let before = try await district.fingerprint()
        let error = await #expect(throws: RPCError.self) {
          try await withPEMISClient(district.address) { client in try await testCase.call(client, target) }
        }
        #expect(error?.code == .unauthenticated)
        let after = try await district.fingerprint(auditThrough: before.auditHead)
        #expect(after == before, "a call without a session changed the data directory: \(after.differences(from: before).joined(separator: "; "))")
        let entries = try await district.auditEntries(after: before.auditHead)
        #expect(
          entries.map { [$0.method, $0.username, $0.result] } == [[testCase.method, "", RPCError.Code.unauthenticated.grpcName]],
          "a call without a session should leave exactly its own audit entry, found \(entries)")
      }
      for role in Role.allCases {
        let target = try await testCase.setup(district)
        let username = District.user(role)
        // A session opened when the district was seeded (a login per role per case was a third
        // of the matrix's time); Logout ends it in this case's copy only.
        let token = try await DistrictTemplate.token(username)
        let before = try await district.fingerprint()
        var outcome: RPCError?
        do {
          try await withPEMISClient(district.address, token: token) { client in try await testCase.call(client, target) }
        } catch let error as RPCError {
          outcome = error
        }
        if testCase.allowed.contains(role) {
          #expect(
            outcome?.code != .permissionDenied && outcome?.code != .unauthenticated,
            "\(role.rawValue) should be allowed: \(outcome.map(String.init(describing:)) ?? "")")
        } else {
          #expect(outcome?.code == .permissionDenied, "\(role.rawValue) should be denied, got \(outcome.map(String.init(describing:)) ?? "OK")")
          // Every table of every file as it was, but for the audit entry of the denial…
          let after = try await district.fingerprint(auditThrough: before.auditHead)
          #expect(
            after == before,
            "a denied call by \(role.rawValue) changed the data directory: \(after.differences(from: before).joined(separator: "; "))")
          // …which must be there: one entry, this call, this caller, denied. A change refused by
          // its handler (not at the door) was written to the log before it ran (fail closed):
          // that STARTED entry is the same call's, with the same request id.
          let entries = try await district.auditEntries(after: before.auditHead)
          let outcomes = entries.filter { $0.result != AuditRecord.startedResult }
          #expect(
            outcomes.map { [$0.method, $0.username, $0.role, $0.result] }
              == [[testCase.method, username, role.rawValue, RPCError.Code.permissionDenied.grpcName]],
            "a denied call by \(role.rawValue) should leave exactly its own audit entry, found \(entries)")
          #expect(
            entries.filter { $0.result == AuditRecord.startedResult }.allSatisfy { started in
              started.method == testCase.method && outcomes.allSatisfy { $0.requestId == started.requestId }
            }, "an intent entry of another call: \(entries)")
        }
      }
    }
  }
}

// Two lanes, each serialized: a case starts a server of its own (on a copy of the seeded district)
// and calls as every role. All at once they would crowd out the timing-sensitive transport tests
// on a two-core machine; one at a time, the matrix outlasted the rest of the suite by two minutes
// with a core idle.
@Suite("Authorization: every method × every role", .serialized)
struct AuthorizationMatrixTests {
  @Test(
    "without a session a call is UNAUTHENTICATED; allowed roles pass authorization, denied ones get PERMISSION_DENIED; every refusal is audited and changes nothing",
    arguments: MatrixCase.lane(0))
  func matrix(_ testCase: MatrixCase) async throws { try await testCase.check() }

  @Test("the two lanes together are the whole matrix, each case once")
  func lanes() {
    #expect((MatrixCase.lane(0) + MatrixCase.lane(1)).map(\.name).sorted() == MatrixCase.all.map(\.name).sorted())
    #expect(Set(MatrixCase.all.map(\.name)).count == MatrixCase.all.count)
  }

  @Test("every method in the policy table is covered by the matrix or is open")
  func coverage() {
    let covered = Set(MatrixCase.all.map(\.method))
    for (method, policy) in Policy.table {
      if case .open = policy.access { continue }
      #expect(covered.contains(method), "\(method) is missing from the matrix")
    }
    // And every method the server serves has a policy (the interceptor refuses the rest).
    let served = [
      Pemis_V1_Session.descriptor, Pemis_V1_Accounts.descriptor, Pemis_V1_Onboarding.descriptor,
      Pemis_V1_Kindergartens.descriptor, Pemis_V1_Audit.descriptor, Pemis_V1_Health.descriptor, Pemis_V1_Echo.descriptor,
      Pemis_V1_Deadlines.descriptor, Pemis_V1_KindergartenData.descriptor, Pemis_V1_ChildRecords.descriptor,
      Pemis_V1_Transfers.descriptor, Pemis_V1_Duplicates.descriptor, Pemis_V1_District.descriptor,
    ]
    let methods =
      Pemis_V1_Session.Method.descriptors + Pemis_V1_Accounts.Method.descriptors + Pemis_V1_Onboarding.Method.descriptors
      + Pemis_V1_Kindergartens.Method.descriptors + Pemis_V1_Audit.Method.descriptors
      + Pemis_V1_Health.Method.descriptors + Pemis_V1_Echo.Method.descriptors + Pemis_V1_Deadlines.Method.descriptors
      + Pemis_V1_KindergartenData.Method.descriptors + Pemis_V1_ChildRecords.Method.descriptors + Pemis_V1_Transfers.Method.descriptors
      + Pemis_V1_Duplicates.Method.descriptors + Pemis_V1_District.Method.descriptors
    #expect(served.count == 13)
    for method in methods { #expect(Policy.table["/\(method.fullyQualifiedMethod)"] != nil, "\(method) has no policy") }
  }
}

/// The matrix's second lane (``AuthorizationMatrixTests``).
@Suite("Authorization: every method × every role, second lane", .serialized)
struct AuthorizationMatrixSecondLaneTests {
  @Test(
    "without a session a call is UNAUTHENTICATED; allowed roles pass authorization, denied ones get PERMISSION_DENIED; every refusal is audited and changes nothing",
    arguments: MatrixCase.lane(1))
  func matrix(_ testCase: MatrixCase) async throws { try await testCase.check() }
}
