import Foundation
import GRDB
import GRPCCore
import Logging
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Synchronization
import Testing

@testable import PEMISServer
@testable import PEMISStore

private func scratchDirectory() -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("pemis-errors-\(UUID())").path
}

/// Real SQLite failures, provoked on real files, and what they become at the store's edge and
/// then as a status.
@Suite("Errors: what SQLite reports becomes a store error kind and a status")
struct StoreErrorMappingTests {
  static let account = AccountRecord(
    username: "wang.li", role: .principal, kindergartenCode: "1112000101", displayName: "王丽", passwordHash: "x",
    createdAt: 1)

  @Test("a UNIQUE violation is ALREADY_EXISTS, named without SQL or values")
  func unique() async throws {
    let registry = try Registry(directory: scratchDirectory(), keys: testKeys)
    try await registry.createAccount(Self.account)
    let error = await #expect(throws: StoreError.self) {
      try await registry.writer.write { db in try Self.account.insert(db) }
    }
    #expect(error?.kind == .alreadyExists)
    #expect(error.map { RPCError($0).code } == .alreadyExists)
    #expect(error?.cause is DatabaseError)
    let message = error?.message ?? ""
    #expect(message.contains("the district registry"))
    #expect(!message.contains("INSERT") && !message.contains("wang.li") && !message.contains("UNIQUE"))
  }

  @Test("another constraint (a session of no account) is ABORTED")
  func foreignKey() async throws {
    let registry = try Registry(directory: scratchDirectory(), keys: testKeys)
    let error = await #expect(throws: StoreError.self) {
      try await registry.createSession(SessionRecord(tokenHash: "t", username: "nobody", createdAt: 1, expiresAt: 2))
    }
    #expect(error?.kind == .aborted)
    #expect(error.map { RPCError($0).code } == .aborted)
    #expect(error?.message.contains("nothing was written") == true)
  }

  @Test("a full disk (max_page_count reached) is RESOURCE_EXHAUSTED and writes nothing")
  func diskFull() async throws {
    let registry = try Registry(directory: scratchDirectory(), keys: testKeys)
    try await registry.writer.writeWithoutTransaction { db in
      let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
      try db.execute(sql: "PRAGMA max_page_count = \(pages)")
    }
    let error = await #expect(throws: StoreError.self) {
      try await registry.setMeta("filler", String(repeating: "x", count: 200_000))
    }
    #expect(error?.kind == .resourceExhausted)
    #expect(error.map { RPCError($0).code } == .resourceExhausted)
    #expect(error?.message == "the server's disk is full; nothing was written to the district registry")
    #expect(try await registry.meta("filler") == nil)
  }

  @Test("a write lock held elsewhere (busy timeout 0) is UNAVAILABLE: try again")
  func busy() async throws {
    let registry = try Registry(directory: scratchDirectory(), keys: testKeys)
    try await registry.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA busy_timeout = 0") }
    var holding = Configuration()
    holding.allowsUnsafeTransactions = true  // the lock outlives one access, on purpose
    let other = try DatabaseQueue(path: registry.path, configuration: holding)
    try await other.writeWithoutTransaction { db in try db.execute(sql: "BEGIN EXCLUSIVE") }
    let error = await #expect(throws: StoreError.self) { try await registry.setMeta("k", "v") }
    try await other.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
    #expect(error?.kind == .unavailable)
    #expect(error.map { RPCError($0).code } == .unavailable)
    #expect(error?.message.contains("busy") == true && error?.message.contains("try again") == true)
    try await registry.setMeta("k", "v")
  }

  @Test("a damaged shard file is DATA_LOSS when the pool opens it")
  func damagedShard() async throws {
    let directory = scratchDirectory()
    let pool = try ShardPool(directory: directory, keys: testKeys)
    let code = try InstitutionCode(validating: "1112000199")
    try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: pool.path(for: code)))
    let error = await #expect(throws: StoreError.self) { try await pool.shard(code) }
    #expect(error?.kind == .dataLoss)
    #expect(error.map { RPCError($0).code } == .dataLoss)
    #expect(error?.message.contains("kindergarten 1112000199") == true)
  }

  @Test("a rule about a record's state is FAILED_PRECONDITION by its kind; other rules INVALID_ARGUMENT")
  func domainKinds() throws {
    let state = #expect(throws: DomainError.self) { try OnboardingStep.approve.apply(to: .active) }
    #expect(state?.kind == .failedPrecondition)
    #expect(state.map { RPCError($0).code } == .failedPrecondition)
    #expect(state.map { RPCError($0).message.hasPrefix("application_id: ") } == true)
    let format = DomainError(field: "institution_code", rule: "format", "must start with 1")
    #expect(format.kind == .invalidArgument)
    #expect(RPCError(format).code == .invalidArgument)
  }

  @Test("what nobody typed becomes INTERNAL with a message; empty messages get words")
  func lastWord() {
    struct Surprise: Error {}
    let status = ErrorStatus(logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    let unexpected = status.status(for: Surprise(), method: "/pemis.v1.X/Y")
    #expect(unexpected.code == .internalError)
    #expect(unexpected.message.contains("internal error (reference "))
    let unknown = status.status(for: RPCError(code: .unknown, message: ""), method: "/pemis.v1.X/Y")
    #expect(unknown.code == .internalError && !unknown.message.isEmpty)
    let silent = status.status(for: RPCError(code: .unavailable, message: ""), method: "/pemis.v1.X/Y")
    #expect(silent.code == .unavailable && silent.message == "the server is unavailable; try again")
    #expect(status.status(for: CancellationError(), method: "/pemis.v1.X/Y").code == .cancelled)
  }

  @Test("calls refused for load are logged at most 60 lines a minute; the next line counts the rest")
  func sheddingLogLimited() {
    let lines = LogLines()
    let status = ErrorStatus(logger: Logger(label: "test", factory: { _ in CapturingLogHandler(lines: lines) }))
    // Before, each of a crowd's refused calls wrote a warning: 19,237 lines in 20 s of the door run.
    for _ in 0..<500 {
      _ = status.status(for: RPCError(code: .resourceExhausted, message: "server is short of memory"), method: "/pemis.v1.Echo/Get")
    }
    #expect(lines.count == 60)
    // A failure that is not about load is never held back.
    _ = status.status(for: RPCError(code: .dataLoss, message: "a shard file is damaged"), method: "/pemis.v1.X/Y")
    #expect(lines.count == 61)
  }
}

/// Log lines a test can count.
final class LogLines: Sendable {
  private let lines = Mutex<[String]>([])
  func append(_ line: String) { lines.withLock { $0.append(line) } }
  var count: Int { lines.withLock { $0.count } }
}

struct CapturingLogHandler: LogHandler {
  let lines: LogLines
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace
  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }
  func log(event: LogEvent) { lines.append("\(event.message)") }
}

/// Sends any method a request as bytes, so one helper calls every method of the policy table.
struct RawBytes: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
  func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

/// One request per method that must fail, by a caller the policy lets through where the method
/// can fail for one (else by a caller whose session ended), and what the message must name.
struct FailingCall: Sendable {
  enum Caller: Sendable {
    /// The role's account (of kindergarten A for kindergarten roles).
    case role(Role)
    /// No session (open methods).
    case anonymous
    /// A token the server never issued.
    case endedSession
  }

  var caller: Caller
  /// How the message starts: the field it names ("record_number:"), or the rule.
  var names: String
  /// The status, where the case is about one (a state rule, a malformed code).
  var code: RPCError.Code?
  var request: @Sendable (District) async throws -> [UInt8]

  static func call<M: SwiftProtobuf.Message>(_ caller: Caller, names: String, code: RPCError.Code? = nil, _ message: M) -> Self {
    let bytes: [UInt8] = try! message.serializedBytes()
    return Self(caller: caller, names: names, code: code) { _ in bytes }
  }

  static let a = District.kindergartenA
  static let badCode = "12"
  static let badPage = Pemis_V1_PageRequest.with { $0.pageToken = "not-a-token" }

  /// Keyed by the policy table's method paths.
  static let all: [String: FailingCall] = {
    typealias S = Pemis_V1_Session.Method
    typealias Ac = Pemis_V1_Accounts.Method
    typealias O = Pemis_V1_Onboarding.Method
    typealias K = Pemis_V1_Kindergartens.Method
    typealias D = Pemis_V1_Deadlines.Method
    typealias KD = Pemis_V1_KindergartenData.Method
    typealias C = Pemis_V1_ChildRecords.Method
    typealias T = Pemis_V1_Transfers.Method
    typealias Du = Pemis_V1_Duplicates.Method
    let echo = Pemis_V1_EchoRequest.with { $0.delayMs = 1_000_000 }
    let principal = Caller.role(.principal)
    let admin = Caller.role(.districtAdmin)
    let missing = "G000000000000000000"
    let cases: [(MethodDescriptor, FailingCall)] = [
      (Pemis_V1_Health.Method.Check.descriptor, call(.anonymous, names: "service:", code: .notFound, Pemis_V1_HealthCheckRequest.with { $0.service = "pemis.v1.Nothing" })),
      (Pemis_V1_Echo.Method.Get.descriptor, call(.anonymous, names: "delay_ms:", code: .invalidArgument, echo)),
      (Pemis_V1_Echo.Method.Expand.descriptor, call(.anonymous, names: "delay_ms:", code: .invalidArgument, echo)),
      (Pemis_V1_Echo.Method.Collect.descriptor, call(.anonymous, names: "delay_ms:", code: .invalidArgument, echo)),
      (Pemis_V1_Echo.Method.Update.descriptor, call(.anonymous, names: "delay_ms:", code: .invalidArgument, echo)),

      (S.Login.descriptor, call(.anonymous, names: "login:", code: .unauthenticated, Pemis_V1_LoginRequest.with { $0.username = "nobody"; $0.password = "x" })),
      (S.ChangePassword.descriptor, call(admin, names: "current_password:", Pemis_V1_ChangePasswordRequest.with { $0.currentPassword = "wrong" })),
      (S.Logout.descriptor, call(.endedSession, names: "authorization:", code: .unauthenticated, Pemis_V1_LogoutRequest())),
      (S.WhoAmI.descriptor, call(.endedSession, names: "authorization:", code: .unauthenticated, Pemis_V1_WhoAmIRequest())),

      (Ac.CreateAccount.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_CreateAccountRequest.with { $0.username = "new.one"; $0.role = .classLeader; $0.kindergartenCode = badCode; $0.displayName = "班长" })),
      (Ac.DisableAccount.descriptor, call(admin, names: "username:", code: .notFound, Pemis_V1_AccountRequest.with { $0.username = "nobody" })),
      (Ac.EnableAccount.descriptor, call(admin, names: "username:", code: .notFound, Pemis_V1_AccountRequest.with { $0.username = "nobody" })),
      (Ac.ResetPassword.descriptor, call(admin, names: "username:", code: .notFound, Pemis_V1_AccountRequest.with { $0.username = "nobody" })),
      (Ac.UnsealAccount.descriptor, call(admin, names: "username:", code: .notFound, Pemis_V1_AccountRequest.with { $0.username = "nobody" })),
      (Ac.ListAccounts.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListAccountsRequest.with { $0.kindergartenCode = badCode })),

      (O.SubmitApplication.descriptor, call(.role(.preschoolOffice), names: "form.name:", code: .invalidArgument, Pemis_V1_SubmitApplicationRequest.with { $0.form.ownership = .public })),
      (O.ReviewApplication.descriptor, call(.role(.preschoolOffice), names: "application_id:", code: .notFound, Pemis_V1_ReviewApplicationRequest.with { $0.applicationID = "nope"; $0.approve = true })),
      (O.ResubmitApplication.descriptor, call(.role(.preschoolOffice), names: "application_id:", code: .notFound, Pemis_V1_ResubmitApplicationRequest.with { $0.applicationID = "nope" })),
      // The state rule: a submitted application is not admitted before it is approved.
      (O.AdmitKindergarten.descriptor, FailingCall(caller: .role(.planningOffice), names: "application_id: cannot", code: .failedPrecondition) { district in
        let id = try await district.application(.public, to: .submitted)
        return try Pemis_V1_AdmitKindergartenRequest.with { $0.applicationID = id; $0.institutionCode = "1112999901" }.serializedBytes()
      }),
      (O.RecordCommitment.descriptor, call(.role(.preschoolOffice), names: "application_id:", code: .notFound, Pemis_V1_RecordCommitmentRequest.with { $0.applicationID = "nope" })),
      (O.IssueAccounts.descriptor, call(admin, names: "application_id:", code: .notFound, Pemis_V1_IssueAccountsRequest.with { $0.applicationID = "nope" })),
      (O.GetApplication.descriptor, call(admin, names: "application_id:", code: .notFound, Pemis_V1_GetApplicationRequest.with { $0.applicationID = "nope" })),
      (O.ListApplications.descriptor, call(admin, names: "page.page_token:", code: .invalidArgument, Pemis_V1_ListApplicationsRequest.with { $0.page = badPage })),

      (K.GetKindergarten.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_GetKindergartenRequest.with { $0.kindergartenCode = badCode })),
      (K.ListKindergartens.descriptor, call(admin, names: "page.page_token:", code: .invalidArgument, Pemis_V1_ListKindergartensRequest.with { $0.page = badPage })),

      (D.StartTerm.descriptor, call(admin, names: "term:", Pemis_V1_StartTermRequest())),
      (D.ListObligations.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListObligationsRequest.with { $0.kindergartenCode = badCode })),
      (D.ListOverdue.descriptor, call(admin, names: "page.page_token:", code: .invalidArgument, Pemis_V1_ListOverdueRequest.with { $0.page = badPage })),
      (D.CompleteArea.descriptor, call(principal, names: "area:", Pemis_V1_CompleteAreaRequest.with { $0.area = "nothing" })),

      (KD.GetProfile.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_GetProfileRequest.with { $0.kindergartenCode = badCode })),
      (KD.UpdateProfile.descriptor, call(principal, names: "profile.name:", code: .invalidArgument, Pemis_V1_UpdateProfileRequest())),
      (KD.ListClasses.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListClassesRequest.with { $0.kindergartenCode = badCode })),
      (KD.CreateClass.descriptor, call(principal, names: "class.grade:", code: .invalidArgument, Pemis_V1_CreateClassRequest())),
      (KD.UpdateClass.descriptor, call(principal, names: "class.class_id:", Pemis_V1_UpdateClassRequest.with { $0.class = KindergartenDataFixtures.newClass("无"); $0.class.classID = "nope" })),
      (KD.DeleteClass.descriptor, call(principal, names: "class_id:", Pemis_V1_DeleteClassRequest.with { $0.classID = "nope" })),
      (KD.ListStaff.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListStaffRequest.with { $0.kindergartenCode = badCode })),
      (KD.CreateStaff.descriptor, call(principal, names: "staff.id_document_type:", code: .invalidArgument, Pemis_V1_CreateStaffRequest())),
      (KD.UpdateStaff.descriptor, call(principal, names: "staff.staff_id:", Pemis_V1_UpdateStaffRequest.with { $0.staff = KindergartenDataFixtures.teacher; $0.staff.staffID = "nope" })),
      (KD.GetHistory.descriptor, call(principal, names: "record:", Pemis_V1_GetHistoryRequest.with { $0.record = "nothing" })),
      (KD.GetFinance.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_GetFinanceRequest.with { $0.kindergartenCode = badCode; $0.year = 2026 })),
      (KD.PutFinance.descriptor, call(principal, names: "finance.year:", Pemis_V1_PutFinanceRequest())),
      (KD.ConfirmFinance.descriptor, call(.role(.financeOffice), names: "institution_code:", code: .invalidArgument, Pemis_V1_ConfirmFinanceRequest.with { $0.kindergartenCode = badCode; $0.year = 2026 })),
      (KD.GetLeadershipGroup.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_GetLeadershipGroupRequest.with { $0.kindergartenCode = badCode })),
      (KD.SetLeadershipGroup.descriptor, call(principal, names: "members:", Pemis_V1_SetLeadershipGroupRequest())),

      (C.EnrollChild.descriptor, call(principal, names: "child.gender:", code: .invalidArgument, Pemis_V1_EnrollChildRequest())),
      (C.ListChildren.descriptor, call(principal, names: "page.page_token:", code: .invalidArgument, Pemis_V1_ListChildrenRequest.with { $0.page = badPage })),
      (C.GetChild.descriptor, call(principal, names: "record_number:", Pemis_V1_GetChildRequest.with { $0.recordNumber = missing })),
      (C.AssignClass.descriptor, call(principal, names: "record_number:", Pemis_V1_AssignClassRequest.with { $0.recordNumber = missing; $0.classID = "nope" })),
      (C.PromoteClass.descriptor, call(principal, names: "class_id:", Pemis_V1_ClassStepRequest.with { $0.classID = "nope" })),
      (C.GraduateClass.descriptor, call(principal, names: "class_id:", Pemis_V1_ClassStepRequest.with { $0.classID = "nope" })),
      (C.LeaveChild.descriptor, call(principal, names: "record_number:", Pemis_V1_LeaveChildRequest.with { $0.recordNumber = missing; $0.reason = "moved away" })),
      (C.RecordAccidentalDeparture.descriptor, call(principal, names: "record_number:", Pemis_V1_AccidentalDepartureRequest.with { $0.recordNumber = missing; $0.kind = "injury"; $0.evidence = "report" })),
      (C.UpdateChild.descriptor, call(principal, names: "fields:", code: .invalidArgument, Pemis_V1_UpdateChildRequest.with { $0.recordNumber = missing })),
      (C.RequestKeyChange.descriptor, call(principal, names: "evidence:", Pemis_V1_RequestKeyChangeRequest.with { $0.recordNumber = missing })),
      (C.ListKeyChanges.descriptor, call(principal, names: "state:", Pemis_V1_ListKeyChangesRequest.with { $0.state = "nothing" })),
      (C.DecideKeyChange.descriptor, call(principal, names: "id:", Pemis_V1_DecideKeyChangeRequest.with { $0.id = 999_999; $0.approve = true })),
      (C.GetMonthlyAudit.descriptor, call(principal, names: "month:", Pemis_V1_MonthlyAuditRequest.with { $0.month = "nothing" })),
      (C.SignOffMonth.descriptor, call(principal, names: "month:", Pemis_V1_SignOffMonthRequest.with { $0.month = "nothing" })),
      (C.RecordPaperArchive.descriptor, call(principal, names: "record_number:", Pemis_V1_PaperArchiveRequest.with { $0.recordNumber = missing; $0.checkedBy = "赵敏"; $0.parentSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 } })),
      (C.ListPaperArchive.descriptor, call(principal, names: "filter:", Pemis_V1_ListPaperArchiveRequest.with { $0.filter = "nothing" })),
      (C.RecordPaperShredded.descriptor, call(principal, names: "shredded_by:", Pemis_V1_PaperShreddedRequest.with { $0.recordNumber = missing })),
      (C.ImportChildren.descriptor, call(principal, names: "file:", code: .invalidArgument, Pemis_V1_ImportChildrenRequest.with { $0.chunk = Data("no,such,columns\r\n1,2,3\r\n".utf8) })),

      (T.TransferOut.descriptor, call(principal, names: "record_number:", Pemis_V1_TransferOutRequest.with { $0.recordNumber = missing; $0.toKindergartenCode = District.kindergartenB })),
      (T.GetTransferArchive.descriptor, call(principal, names: "record_number:", Pemis_V1_GetTransferArchiveRequest.with { $0.recordNumber = missing })),
      (T.TransferIn.descriptor, call(principal, names: "transfer_id:", Pemis_V1_TransferInRequest.with { $0.transferID = "T-unknown-1" })),
      (T.CancelTransfer.descriptor, call(principal, names: "transfer_id:", Pemis_V1_TransferActionRequest.with { $0.transferID = "T-unknown-1" })),
      (T.DeclineTransfer.descriptor, call(principal, names: "transfer_id:", Pemis_V1_TransferActionRequest.with { $0.transferID = "T-unknown-1"; $0.reason = "no place" })),
      (T.AbortTransfer.descriptor, call(.role(.preschoolOffice), names: "transfer_id:", code: .notFound, Pemis_V1_AbortTransferRequest.with { $0.transferID = "T-unknown-1"; $0.reason = "the parents withdrew" })),
      (T.ListTransfers.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListTransfersRequest.with { $0.kindergartenCode = badCode })),

      (Du.SweepDuplicates.descriptor, call(.endedSession, names: "authorization:", code: .unauthenticated, Pemis_V1_SweepDuplicatesRequest())),
      (Du.ListCases.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_ListCasesRequest.with { $0.kindergartenCode = badCode })),
      (Du.GetCase.descriptor, call(principal, names: "id:", Pemis_V1_GetCaseRequest.with { $0.id = 999_999 })),
      (Du.ResolveCase.descriptor, call(principal, names: "case_id:", Pemis_V1_ResolveCaseRequest.with { $0.id = 999_999; $0.action = "modified" })),
      (Du.ArbitrateCase.descriptor, call(.role(.preschoolOffice), names: "case_id:", Pemis_V1_ArbitrateCaseRequest.with { $0.id = 999_999; $0.accept = true })),

      (Pemis_V1_District.Method.GetDistrictSummary.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_DistrictSummaryRequest.with { $0.kindergartenCodes = [badCode] })),
      (Pemis_V1_Exports.Method.RequestExport.descriptor, call(principal, names: "purpose:", Pemis_V1_RequestExportRequest.with { $0.fields = ["name"] })),
      (Pemis_V1_Exports.Method.DecideExport.descriptor, call(.role(.exportApprover), names: "id:", Pemis_V1_DecideExportRequest.with { $0.id = "E999999" })),
      (Pemis_V1_Exports.Method.ListExports.descriptor, call(principal, names: "state:", Pemis_V1_ListExportsRequest.with { $0.state = "nothing" })),
      (Pemis_V1_Exports.Method.DownloadExport.descriptor, call(.role(.preschoolOffice), names: "id:", Pemis_V1_DownloadExportRequest.with { $0.id = "E999999" })),
      (Pemis_V1_Audit.Method.QueryAuditLog.descriptor, call(admin, names: "institution_code:", code: .invalidArgument, Pemis_V1_QueryAuditLogRequest.with { $0.kindergartenCode = badCode })),
    ]
    return Dictionary(uniqueKeysWithValues: cases.map { (Policy.path($0.0), $0.1) })
  }()
}

/// Sends `message` to `method` (a policy table path) as the only message of the call; returns
/// how the call ended (nil if it succeeded).
func rawCall(_ client: GRPCClient<PEMISWireClientTransport>, method: String, message: [UInt8]) async -> RPCError? {
  let parts = method.dropFirst().split(separator: "/")
  let descriptor = MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
  do {
    try await client.bidirectionalStreaming(
      request: StreamingClientRequest(of: [UInt8].self) { writer in try await writer.write(message) },
      descriptor: descriptor, serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
    ) { response in
      for try await _ in response.messages {}
    }
    return nil
  } catch let error as RPCError {
    return error
  } catch {
    return RPCError(code: .unknown, message: "the client saw a non-RPC error: \(error)")
  }
}

@Suite("Errors: no call ends UNKNOWN or without a message", .serialized)
struct ErrorStatusTests {
  @Test("every method of the policy table, sent a request that fails, names the field or rule")
  func everyMethod() async throws {
    try await withDistrict({ $0.diagnostics = true }) { district in
      var tokens: [Role: String] = [:]
      for method in Policy.table.keys.sorted() {
        guard let failing = FailingCall.all[method] else {
          Issue.record("\(method) has no failing request in FailingCall.all: add one")
          continue
        }
        let token: String?
        switch failing.caller {
        case .anonymous: token = nil
        case .endedSession: token = "not-a-session-token"
        case .role(let role):
          if tokens[role] == nil { tokens[role] = try await district.login(District.user(role)).token }
          token = tokens[role]
        }
        let message = try await failing.request(district)
        let error = try await withPEMISClient(district.address, token: token) { client in
          await rawCall(client, method: method, message: message)
        }
        guard let error else {
          Issue.record("\(method) succeeded; its case should fail")
          continue
        }
        #expect(error.code != .unknown, "\(method): \(error)")
        #expect(!error.message.isEmpty, "\(method) ended \(error.code) without a message")
        #expect(error.message.hasPrefix(failing.names), "\(method): '\(error.message)' does not start with \(failing.names)")
        if let code = failing.code { #expect(error.code == code, "\(method): \(error)") }
      }
    }
  }

  /// A file of `count` children that are valid and new.
  static func importFile(_ count: Int) -> String {
    var lines = [ChildImportTests.header]
    for i in 0..<count {
      let sequence = String(format: "%03d", i)
      let gender = Int(String(sequence.last!))! % 2 == 1 ? "男" : "女"
      lines.append(ChildImportTests.row("王\(i)", gender, "2022-05-20", "1", ChildImportTests.id("12011620220520\(sequence)")))
    }
    return lines.joined(separator: "\r\n") + "\r\n"
  }

  @Test("a shard whose disk is full during an import: RESOURCE_EXHAUSTED, nothing imported, then it works")
  func shardDiskFull() async throws {
    try await withDistrict({ $0.diagnostics = true }) { district in
      let code = try InstitutionCode(validating: District.kindergartenA)
      let shard = try await district.server.tenancy.shards.shard(code)
      let file = Data(Self.importFile(300).utf8)
      func importAll() async throws -> RPCError? {
        try await district.as(.administrator) { client in
          do {
            try await Pemis_V1_ChildRecords.Client(wrapping: client).importChildren(
              requestProducer: { writer in try await writer.write(.with { $0.chunk = file }) },
              onResponse: { response in for try await _ in response.messages {} })
            return nil
          } catch let error as RPCError {
            return error
          }
        }
      }
      func children() async throws -> Int64 {
        try await district.as(.administrator) { client in
          try await Pemis_V1_ChildRecords.Client(wrapping: client).listChildren(.init()).page.totalCount
        }
      }
      let before = try await children()
      // The disk "fills": the shard's connection may not grow its file by a page.
      try await shard.writer.writeWithoutTransaction { db in
        let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
        try db.execute(sql: "PRAGMA max_page_count = \(pages)")
      }
      let error = try #require(try await importAll())
      #expect(error.code == .resourceExhausted, "\(error)")
      #expect(error.message == "the server's disk is full; nothing was written to the database of kindergarten \(code)")
      #expect(try await children() == before)
      // Nothing was reserved in the district index either, so the same file imports once there is room.
      try await shard.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
      #expect(try await importAll() == nil)
      #expect(try await children() == before + 300)
    }
  }
}
