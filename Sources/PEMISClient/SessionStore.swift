public import Foundation
public import GRPCCore

/// The user's saved session: `$PEMIS_CONFIG_DIR` (tests), else `$XDG_CONFIG_HOME/pemis`, else
/// `~/.config/pemis`, file `session.json`, readable by the user only (mode 0600): the token is a
/// credential.
public struct SavedSession: Codable, Sendable, Equatable {
  public var server: String
  public var token: String
  public var username: String
  public var expiresAt: Int64
  /// How the session was made, used again by the next commands: the CA file given at login
  /// (nil: the system's trust store), and whether the user chose plaintext. Absent in files
  /// written before TLS, which then use TLS with the system's trust store.
  public var caFile: String?
  public var plaintext: Bool?

  public init(
    server: String, token: String, username: String, expiresAt: Int64, caFile: String? = nil, plaintext: Bool? = nil
  ) {
    self.server = server
    self.token = token
    self.username = username
    self.expiresAt = expiresAt
    self.caFile = caFile
    self.plaintext = plaintext
  }
}

public enum SessionStore {
  public static var directory: URL {
    let environment = ProcessInfo.processInfo.environment
    if let dir = environment["PEMIS_CONFIG_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
    if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
      return URL(fileURLWithPath: xdg).appendingPathComponent("pemis")
    }
    return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/pemis")
  }

  public static var file: URL { directory.appendingPathComponent("session.json") }

  public static func load() -> SavedSession? {
    guard let data = try? Data(contentsOf: file) else { return nil }
    return try? JSONDecoder().decode(SavedSession.self, from: data)
  }

  /// Writes the session with owner-only permissions, creating the file that way from the start.
  public static func save(_ session: SavedSession) throws {
    try FileManager.default.createDirectory(
      at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let data = try JSONEncoder().encode(session)
    let path = file.path
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
    defer { close(fd) }
    fchmod(fd, 0o600)
    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == data.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
  }

  public static func remove() {
    try? FileManager.default.removeItem(at: file)
  }
}

/// Adds the session token to every call ("authorization: Bearer <token>").
public struct BearerTokenInterceptor: ClientInterceptor {
  public let token: String

  public init(token: String) { self.token = token }

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingClientRequest<Input>,
    context: ClientContext,
    next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
  ) async throws -> StreamingClientResponse<Output> {
    var request = request
    request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
    return try await next(request, context)
  }
}
