internal import GRPCCore
public import PEMISDomain
internal import Synchronization

/// Who is calling: the account behind the session token, as the authorization interceptor
/// established it. Handlers read it with ``Caller/required()``.
public struct Caller: Sendable, Equatable {
  public var username: String
  public var role: Role
  /// The caller's own kindergarten, for kindergarten roles.
  public var kindergarten: InstitutionCode?
  public var tokenHash: String
  public var sessionExpiresAt: Int64
  /// What the policy table granted this caller for the current method.
  public var scope: Scope
  /// Class leaders: the classes they may act on.
  public var classes: [String] = []

  @TaskLocal static var current: Caller?

  /// The authenticated caller; only methods the policy table marks as public run without one.
  static func required() throws -> Caller {
    guard let caller = current else {
      throw RPCError(code: .unauthenticated, message: "authorization: this method needs a session (pemis login)")
    }
    return caller
  }

  /// Whether the caller may see a kindergarten of this ownership and code.
  func covers(ownership: Ownership, code: String) -> Bool {
    scope.covers(ownership: ownership, code: code, own: kindergarten)
  }
}

/// How far a role's right to a method reaches (MISSION: actors and their rights).
public enum Scope: String, Sendable, Hashable {
  /// Every kindergarten of the district.
  case district
  /// Public kindergartens only (Preschool Education Office's onboarding and review).
  case publicKindergartens
  /// Private kindergartens only (Vocational & Adult Education Office).
  case privateKindergartens
  /// The caller's own kindergarten only.
  case ownKindergarten
  /// Only the caller itself (its session, its password).
  case own

  func covers(ownership: Ownership, code: String?, own: InstitutionCode?) -> Bool {
    switch self {
    case .district: true
    case .publicKindergartens: ownership == .public
    case .privateKindergartens: ownership == .private
    case .ownKindergarten: code != nil && code == own?.rawValue
    case .own: false
    }
  }

  /// For list methods: the ownership filter this scope imposes (nil: none).
  var ownershipFilter: Ownership? {
    switch self {
    case .publicKindergartens: .public
    case .privateKindergartens: .private
    default: nil
    }
  }
}

/// What one call touches, as the interceptor resolves it before the handler runs, and the record
/// ids handlers add for the audit log.
final class AuditTargets: Sendable {
  private let ids = Mutex<[String]>([])
  @TaskLocal static var current: AuditTargets?

  /// Adds a record id (e.g. "account:wang.li", "application:A000003") to this call's audit entry.
  static func add(_ id: String) { current?.append(id) }

  func append(_ id: String) { ids.withLock { if !$0.contains(id) { $0.append(id) } } }
  var all: [String] { ids.withLock { $0 } }
}

