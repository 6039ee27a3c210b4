public import GRDB
public import PEMISDomain

/// An account row of the registry. Passwords are stored only as KDF hashes.
public struct AccountRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "account"

  public var username: String
  public var role: Role
  /// Institution code for kindergarten roles; nil for district roles.
  public var kindergartenCode: String?
  public var displayName: String
  public var passwordHash: String
  public var mustChangePassword: Bool
  public var disabled: Bool
  public var sealed: Bool
  public var failedLogins: Int
  /// Seconds since 1970; 0 when not locked.
  public var lockedUntil: Int64
  public var createdAt: Int64
  /// 0 if never logged in.
  public var lastLoginAt: Int64
  /// When a district administrator last unsealed the account; 0 if never.
  public var unsealedAt: Int64
  /// CLASS_LEADER: the classes it may act on (class identifiers of the kindergarten's shard).
  public var classes: [String]

  public init(
    username: String, role: Role, kindergartenCode: String?, displayName: String, passwordHash: String,
    mustChangePassword: Bool = true, createdAt: Int64, classes: [String] = []
  ) {
    self.username = username
    self.role = role
    self.kindergartenCode = kindergartenCode
    self.displayName = displayName
    self.passwordHash = passwordHash
    self.mustChangePassword = mustChangePassword
    self.disabled = false
    self.sealed = false
    self.failedLogins = 0
    self.lockedUntil = 0
    self.createdAt = createdAt
    self.lastLoginAt = 0
    self.unsealedAt = 0
    self.classes = classes
  }

  /// Since when the account counts as unused, for sealing.
  public var lastUsedAt: Int64 { max(lastLoginAt, createdAt, unsealedAt) }
}

/// A session; the token itself is never stored, only its SHA-256.
public struct SessionRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "session"
  public var tokenHash: String
  public var username: String
  public var createdAt: Int64
  public var expiresAt: Int64

  public init(tokenHash: String, username: String, createdAt: Int64, expiresAt: Int64) {
    self.tokenHash = tokenHash
    self.username = username
    self.createdAt = createdAt
    self.expiresAt = expiresAt
  }
}

/// An onboarding application, from the paper form to an active kindergarten.
public struct ApplicationRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "application"
  public var id: String
  public var state: OnboardingState
  public var ownership: Ownership
  public var name: String
  public var form: ApplicationForm
  public var institutionCode: String?
  public var returnReason: String?
  public var commitmentSignatory: String?
  public var commitmentDate: String?
  public var createdAt: Int64
  public var updatedAt: Int64

  public init(id: String, form: ApplicationForm, createdAt: Int64) {
    self.id = id
    self.state = .submitted
    self.ownership = form.ownership
    self.name = form.name
    self.form = form
    self.createdAt = createdAt
    self.updatedAt = createdAt
  }
}

/// One recorded onboarding step: who, when, what.
public struct OnboardingEventRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "onboarding_event"
  public var id: Int64?
  public var applicationId: String
  public var step: String
  public var actor: String
  public var actorRole: Role
  public var at: Int64
  public var note: String

  public init(applicationId: String, step: String, actor: String, actorRole: Role, at: Int64, note: String = "") {
    self.applicationId = applicationId
    self.step = step
    self.actor = actor
    self.actorRole = actorRole
    self.at = at
    self.note = note
  }

  public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// An admitted, active kindergarten: the tenant.
public struct KindergartenRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "kindergarten"
  public var code: String
  public var name: String
  public var ownership: Ownership
  public var applicationId: String
  public var activatedAt: Int64

  public init(code: String, name: String, ownership: Ownership, applicationId: String, activatedAt: Int64) {
    self.code = code
    self.name = name
    self.ownership = ownership
    self.applicationId = applicationId
    self.activatedAt = activatedAt
  }
}

/// One audit log entry. `hash` chains it to the entry before.
public struct AuditRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "audit_log"
  public var seq: Int64?
  public var atMs: Int64
  public var username: String
  public var role: String
  public var kindergartenCode: String
  public var method: String
  public var targets: String
  public var result: String
  public var peer: String
  /// The call's request id, also in the server's log lines of that call and in its error
  /// trailers (`pemis-request-id`): an operator finds the log of a call a user reports. Empty
  /// for entries written before ids existed, and for entries no call wrote.
  public var requestId: String = ""
  public var prevHash: String
  public var hash: String

  public init(
    atMs: Int64, username: String, role: String, kindergartenCode: String, method: String, targets: [String],
    result: String, peer: String
  ) {
    self.atMs = atMs
    self.username = username
    self.role = role
    self.kindergartenCode = kindergartenCode
    self.method = method
    self.targets = targets.joined(separator: ",")
    self.result = result
    self.peer = peer
    self.prevHash = ""
    self.hash = ""
  }
}
