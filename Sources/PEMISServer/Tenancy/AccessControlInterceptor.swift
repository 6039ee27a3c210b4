internal import GRPCCore
internal import PEMISWire
internal import Logging
internal import PEMISDomain
internal import PEMISStore
internal import Synchronization

/// The way of every call (docs/ARCHITECTURE.md): **authenticate** (session token in metadata)
/// → **authorize** (the policy table: role × method × the scope of what the request targets)
/// → run the handler → **audit** (who, role, kindergarten, method, targets, result, time).
///
/// One interceptor, three steps, because they share what they learn: the caller, and the
/// kindergarten the request turned out to target. Denied calls are audited too.
///
/// Being the outermost step of every call, it is also where a failed call gets its final status
/// (``ErrorStatus``): whatever a handler, a streaming producer or this interceptor threw, the
/// client sees a status other than UNKNOWN, with a message.
struct AccessControlInterceptor: ServerInterceptor {
  let tenancy: Tenancy

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let method = "/\(context.descriptor.fullyQualifiedMethod)"
    let errors = ErrorStatus(logger: tenancy.logger, sheddingLog: tenancy.sheddingLog)
    // The call's request id, for its log lines and audit entry (task-local) and its client.
    let requestID = RequestID.make()
    let status: @Sendable (any Error) -> RPCError = { error in
      var status = RequestID.$current.withValue(requestID) { errors.status(for: error, method: method) }
      status.metadata.addString(requestID, forKey: RequestID.metadataKey)
      return status
    }
    let response: StreamingServerResponse<Output>
    do {
      response = try await RequestID.$current.withValue(requestID) {
        try await checked(request: request, context: context, method: method, next: next)
      }
    } catch {
      return StreamingServerResponse(error: status(error))
    }
    switch response.accepted {
    case .failure(let error):
      return StreamingServerResponse(error: status(error))
    case .success(let contents):
      // A streaming handler fails inside its producer, after this function returned.
      let producer = contents.producer
      var metadata = contents.metadata
      metadata.addString(requestID, forKey: RequestID.metadataKey)
      return StreamingServerResponse(
        accepted: .success(
          .init(metadata: metadata) { writer in
            do {
              return try await RequestID.$current.withValue(requestID) { try await producer(writer) }
            } catch {
              throw status(error)
            }
          }))
    }
  }

  /// Authenticate, authorize, run the handler, audit.
  private func checked<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    method: String,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    guard let policy = Policy.table[method] else {
      // Fail closed: a method nobody wrote a policy for is served to nobody.
      throw RPCError(code: .permissionDenied, message: "\(method) has no access policy")
    }
    // The input boundary comes first, for every method: each message is checked as it is read,
    // by this interceptor or by the handler, before anything else sees it (``InputBoundary``).
    let request = StreamingServerRequest(
      metadata: request.metadata, messages: RPCAsyncSequence(wrapping: BoundaryCheckedMessages(base: request.messages)))
    if case .open = policy.access, case .none = policy.audit {
      try InputBoundary.check(metadata: request.metadata)
      return try await next(request, context)
    }

    let record = AuditTargets()
    var entry = AuditRecord(
      atMs: tenancy.now() * 1000, username: "", role: "", kindergartenCode: "", method: method, targets: [],
      result: "OK", peer: context.remotePeer)
    entry.requestId = RequestID.current
    do {
      try InputBoundary.check(metadata: request.metadata)
      // Read the first request message: it says what the call targets. It is handed on to the
      // handler together with the rest of the stream.
      var iterator = request.messages.makeAsyncIterator()
      guard let message = try await iterator.next() else {
        throw RPCError(code: .invalidArgument, message: "request: missing")
      }
      let request = StreamingServerRequest(
        metadata: request.metadata,
        messages: RPCAsyncSequence(wrapping: Replay(first: message, rest: UncheckedIterator(iterator))))
      let declared = (message as? any TargetedRequest)?.target
      if case .roles = policy.access, declared == nil {
        // Fail closed: a method behind roles must say what it targets.
        throw RPCError(code: .permissionDenied, message: "\(method) declares no target to check the caller's scope against")
      }
      let target = declared ?? .none
      if let id = target.auditID { record.append(id) }
      if case .login(let username) = target { entry.username = username }

      var caller: Caller?
      switch policy.access {
      case .open:
        break
      case .anySession:
        caller = try await authenticate(request.metadata, method: method, allowPasswordChange: true)
      case .roles(let roles):
        var authenticated = try await authenticate(request.metadata, method: method, allowPasswordChange: false)
        entry.username = authenticated.username
        entry.role = authenticated.role.rawValue
        guard let scope = roles[authenticated.role] else {
          throw RPCError(code: .permissionDenied, message: "role \(authenticated.role.rawValue) may not call \(method)")
        }
        authenticated.scope = scope
        let resolved = try await authorize(authenticated, target: target, method: method)
        entry.kindergartenCode = resolved.code ?? ""
        for id in resolved.ids { record.append(id) }
        caller = authenticated
      }
      if let caller {
        entry.username = caller.username
        entry.role = caller.role.rawValue
        if entry.kindergartenCode.isEmpty, let own = caller.kindergarten { entry.kindergartenCode = own.rawValue }
      }
      let audited: Bool
      if case .always = policy.audit { audited = true } else { audited = false }
      // Fail closed (issue 13): a change is written to the audit log before it is made. If that
      // entry cannot be written, nothing is done. Login is not: what it changes (a session)
      // reaches nobody unless its outcome entry is written (below).
      let change = audited && Policy.changesState(method) && !isLogin(target)
      if change {
        var intent = entry
        intent.result = AuditRecord.startedResult
        intent.targets = record.all.joined(separator: ",")
        do {
          try await tenancy.registry.appendAudit(intent)
        } catch {
          throw RPCError(code: .unavailable, message: "audit log: cannot be written, so nothing was done; try again later")
        }
      }
      let response = try await Caller.$current.withValue(caller) {
        try await AuditTargets.$current.withValue(record) {
          try await next(request, context)
        }
      }
      switch response.accepted {
      case .failure(let error):
        entry.result = ErrorStatus.code(of: error).grpcName
        if audited { await appendOutcome(entry, record, change: change) }
        return response
      case .success(let contents):
        // A streaming handler runs inside the producer, after this function returned: it gets
        // the caller and the audit targets there. A read is written to the log before the first
        // message leaves (nothing is shown unless it is logged); a change, when it ends, with its
        // outcome.
        let producer = contents.producer
        let finished = entry
        let caller = caller
        return StreamingServerResponse(
          accepted: .success(
            .init(metadata: contents.metadata) { [self] writer in
              var entry = finished
              let logged = AuditOnce()
              let output: RPCWriter<Output>
              if audited && !change {
                output = RPCWriter(
                  wrapping: AuditedWriter(base: writer, once: logged) { [self] in
                    try await appendBeforeShown(finished, record)
                  })
              } else {
                output = writer
              }
              do {
                let trailers = try await Caller.$current.withValue(caller) {
                  try await AuditTargets.$current.withValue(record) { try await producer(output) }
                }
                if audited && logged.claim() {
                  if change { await appendOutcome(entry, record, change: true) } else { try await appendBeforeShown(entry, record) }
                }
                return trailers
              } catch {
                entry.result = ErrorStatus.code(of: error).grpcName
                if audited && logged.claim() { await appendOutcome(entry, record, change: change) }
                throw error
              }
            }))
      }
    } catch {
      entry.result = ErrorStatus.code(of: error).grpcName
      await appendOutcome(entry, record, change: false)
      throw error
    }
  }

  private func isLogin(_ target: RequestTarget) -> Bool {
    if case .login = target { return true }
    return false
  }

  private func stored(_ entry: AuditRecord, _ targets: AuditTargets) -> AuditRecord {
    var entry = entry
    entry.targets = targets.all.joined(separator: ",")
    return entry
  }

  /// A read's entry, or a login's: written before anything is shown; if it cannot be, the call
  /// fails and shows nothing.
  private func appendBeforeShown(_ entry: AuditRecord, _ targets: AuditTargets) async throws {
    do {
      try await tenancy.registry.appendAudit(stored(entry, targets))
    } catch {
      tenancy.logger.error("audit log append failed; the call was refused", metadata: ["audit.method": "\(entry.method)", "error": "\(error)"])
      throw RPCError(code: .unavailable, message: "audit log: cannot be written, so nothing is shown; try again later")
    }
  }

  /// A change's outcome, or a refusal's: the change was made (its intent entry is in the log)
  /// or nothing was; a failure here is logged and counted, and does not undo either.
  private func appendOutcome(_ entry: AuditRecord, _ targets: AuditTargets, change: Bool) async {
    do {
      try await tenancy.registry.appendAudit(stored(entry, targets))
    } catch {
      tenancy.logger.error(
        change ? "audit log: the outcome of a change could not be written; its intent entry stands" : "audit log append failed",
        metadata: ["audit.method": "\(entry.method)", "audit.result": "\(entry.result)", "error": "\(error)"])
    }
  }

  // MARK: Authenticate

  private func authenticate(_ metadata: Metadata, method: String, allowPasswordChange: Bool) async throws -> Caller {
    let header = metadata[stringValues: "authorization"].first(where: { _ in true }) ?? ""
    guard header.hasPrefix("Bearer "), header.count > 7 else {
      throw RPCError(code: .unauthenticated, message: "authorization: missing session token; log in first (pemis login)")
    }
    let tokenHash = Secrets.tokenHash(String(header.dropFirst(7)))
    guard let (session, account) = try await tenancy.registry.session(tokenHash: tokenHash) else {
      throw RPCError(code: .unauthenticated, message: "authorization: unknown or ended session; log in again")
    }
    let now = tenancy.now()
    guard session.expiresAt > now else {
      try? await tenancy.registry.deleteSession(tokenHash: tokenHash)
      throw RPCError(code: .unauthenticated, message: "authorization: session expired; log in again")
    }
    guard !account.disabled else {
      throw RPCError(code: .unauthenticated, message: "authorization: account \(account.username) is disabled")
    }
    guard !account.sealed else {
      throw RPCError(code: .unauthenticated, message: "authorization: account \(account.username) is sealed")
    }
    if account.mustChangePassword && !allowPasswordChange {
      throw RPCError(
        code: .permissionDenied,
        message: "account \(account.username) must change its one-time password first (pemis password)")
    }
    return Caller(
      username: account.username, role: account.role,
      kindergarten: account.kindergartenCode.flatMap { try? InstitutionCode(validating: $0) },
      tokenHash: tokenHash, sessionExpiresAt: session.expiresAt, scope: .own, classes: account.classes)
  }

  // MARK: Authorize

  struct Resolved {
    var code: String?
    var ids: [String] = []
  }

  /// Holds the caller to its scope for what the request targets. A kindergarten account learns
  /// nothing about other kindergartens: it is refused before anything is looked up.
  private func authorize(_ caller: Caller, target: RequestTarget, method: String) async throws -> Resolved {
    let scope = caller.scope
    let denied = RPCError(code: .permissionDenied, message: "\(caller.role.rawValue) \(caller.username) may not call \(method) on this target (scope: \(scope.rawValue))")
    let registry = tenancy.registry

    func kindergarten(_ text: String) async throws -> Resolved {
      let code = text.isEmpty ? caller.kindergarten?.rawValue : text
      guard let code else {
        throw RPCError(code: .invalidArgument, message: "kindergarten_code: required for district accounts")
      }
      if scope == .ownKindergarten {
        guard code == caller.kindergarten?.rawValue else { throw denied }
      }
      let valid = try InstitutionCode(validating: code)
      guard let record = try await registry.kindergarten(valid.rawValue) else {
        throw RPCError(code: .notFound, message: "kindergarten_code: no kindergarten \(code)")
      }
      guard caller.covers(ownership: record.ownership, code: record.code) else { throw denied }
      return Resolved(code: record.code, ids: ["kindergarten:\(record.code)"])
    }

    switch target {
    case .none, .login:
      return Resolved()
    case .kindergarten(let code):
      return try await kindergarten(code)
    case .districtList(let code):
      if !code.isEmpty { return try await kindergarten(code) }
      guard scope != .ownKindergarten else { return try await kindergarten("") }
      return Resolved()
    case .application(let id):
      guard scope != .ownKindergarten else { throw denied }
      guard let application = try await registry.application(id) else {
        throw RPCError(code: .notFound, message: "application_id: no application '\(id)'")
      }
      guard scope.covers(ownership: application.ownership, code: application.institutionCode, own: nil) else { throw denied }
      return Resolved(code: application.institutionCode, ids: ["application:\(id)"])
    case .newApplication(let ownership):
      guard let ownership else {
        throw RPCError(code: .invalidArgument, message: "form.ownership: must be public or private")
      }
      guard scope.covers(ownership: ownership, code: nil, own: nil) else { throw denied }
      return Resolved()
    case .account(let username):
      if scope == .ownKindergarten {
        // Existence of other kindergartens' accounts is not revealed.
        guard let account = try await registry.account(username), account.kindergartenCode == caller.kindergarten?.rawValue
        else { throw denied }
        return Resolved(code: account.kindergartenCode, ids: ["account:\(username)"])
      }
      guard let account = try await registry.account(username) else {
        throw RPCError(code: .notFound, message: "username: no account '\(username)'")
      }
      if let code = account.kindergartenCode {
        _ = try await kindergarten(code)
      } else if scope != .district {
        throw denied
      }
      return Resolved(code: account.kindergartenCode, ids: ["account:\(username)"])
    case .export(let id):
      let found = try await registry.exportRequest(id)
      // A kindergarten account learns nothing of other exports, not even that they exist.
      if scope == .ownKindergarten, found?.kindergartenCode != caller.kindergarten?.rawValue { throw denied }
      guard let export = found else {
        throw RPCError(code: .notFound, message: "id: no export '\(id)'")
      }
      if let code = export.kindergartenCode {
        var resolved = try await kindergarten(code)
        resolved.ids.append("export:\(id)")
        return resolved
      }
      // A district export: district accounts only, within the scope it was asked for.
      guard scope != .ownKindergarten else { throw denied }
      if let filter = scope.ownershipFilter, filter != export.ownershipScope.flatMap(Ownership.init(rawValue:)) { throw denied }
      return Resolved(ids: ["export:\(id)"])
    case .newAccount(let role, let code):
      guard let role else { throw RPCError(code: .invalidArgument, message: "role: required") }
      if role.isDistrict {
        guard scope == .district else { throw denied }
        guard code.isEmpty else {
          throw RPCError(code: .invalidArgument, message: "kindergarten_code: must be empty for district role \(role.rawValue)")
        }
        return Resolved()
      }
      return try await kindergarten(code)
    }
  }
}

/// A request stream whose first message was already read by the interceptor: that message,
/// then the rest of the original stream. Iterated once, by the handler.
struct Replay<Element: Sendable>: AsyncSequence, Sendable {
  typealias Failure = any Error
  let first: Element
  let rest: UncheckedIterator<RPCAsyncSequence<Element, any Error>.AsyncIterator>

  func makeAsyncIterator() -> Iterator { Iterator(first: first, rest: rest.iterator) }

  struct Iterator: AsyncIteratorProtocol {
    var first: Element?
    var rest: RPCAsyncSequence<Element, any Error>.AsyncIterator

    mutating func next() async throws -> Element? {
      if let element = first {
        first = nil
        return element
      }
      return try await rest.next()
    }
  }
}

/// Carries the request iterator from the interceptor to the handler's task. Safe because exactly
/// one consumer uses it, after the interceptor has stopped.
struct UncheckedIterator<Iterator>: @unchecked Sendable {
  let iterator: Iterator
  init(_ iterator: Iterator) { self.iterator = iterator }
}

/// The response writer of an audited read: the entry is written before the first message
/// leaves, once.
struct AuditedWriter<Element: Sendable>: RPCWriterProtocol {
  let base: RPCWriter<Element>
  let once: AuditOnce
  let before: @Sendable () async throws -> Void

  func write(_ element: Element) async throws {
    if once.claim() { try await before() }
    try await base.write(element)
  }

  func write(contentsOf elements: some Sequence<Element>) async throws {
    if once.claim() { try await before() }
    try await base.write(contentsOf: elements)
  }
}

/// Whether a call's entry was claimed (written, or being written) already.
final class AuditOnce: Sendable {
  private let done = Atomic<Bool>(false)
  /// True exactly once: for the caller that is to write the entry.
  func claim() -> Bool { !done.exchange(true, ordering: .acquiringAndReleasing) }
}
