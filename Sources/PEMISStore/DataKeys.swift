internal import Crypto
public import Foundation
#if canImport(Glibc)
  internal import Glibc
#endif
internal import PEMISDomain
internal import Synchronization

/// The keys that protect children's data at rest (issue 13, "Encryption at rest"; CAC Order
/// No. 4 asks for encrypted storage of children's personal information).
///
/// - **Data keys** seal values with AES-256-GCM: ID numbers, health, guardians' phones, the
///   values of key-information change requests, approved export files, the child reference key.
///   A sealed value names the key that sealed it (`enc:<id>:<base64>`), so a rotation
///   (`pemis-server key rotate`) adds a key, makes it the active one and re-seals everything
///   while the server runs; values still under an older key stay readable until then.
/// - **The index key** makes searchable keys: an HMAC-SHA256 of a value, so the store finds a
///   child by its record number or ID document without keeping the number itself. It is not
///   rotated (every lookup key would change); the fingerprint of it is kept in the registry,
///   so a server started with another key file stops with a clear message instead of reading
///   nothing.
///
/// The keys come from a file kept **outside** the data directory (a stolen copy of the data
/// reads nothing without it), or from the environment variable `PEMIS_DATA_KEY` (the file's
/// text, lines separated by newlines or `;`). The server re-reads the file when it changed or
/// when it meets a value sealed under a key it does not hold yet: that is how a rotation made
/// by another process reaches it.
public final class DataKeys: Sendable {
  /// Where the keys came from.
  public enum Source: Sendable, Equatable {
    case file(String)
    case environment
    /// Generated in memory (tests): gone with the process.
    case memory

    /// Where, in words.
    public var name: String {
      switch self {
      case .file(let path): path
      case .environment: "PEMIS_DATA_KEY"
      case .memory: "keys in memory"
      }
    }
  }

  /// Where the registry keeps ``fingerprint``.
  static let fingerprintMetaKey = "dataKeyFingerprint"

  /// One parsed key file.
  struct Keyring: Sendable {
    var index: SymmetricKey
    var data: [UInt32: SymmetricKey]
    var active: UInt32
  }

  public let source: Source
  private let state: Mutex<(keyring: Keyring, modified: Date?, checked: ContinuousClock.Instant)>
  /// Of the index key: what the registry keeps to tell a wrong key file from the right one.
  public let fingerprint: String

  /// How often sealing looks at the key file's modification time, for a rotation made by
  /// another process.
  static let recheckInterval: Duration = .seconds(2)

  init(keyring: Keyring, source: Source, modified: Date?) {
    self.source = source
    state = Mutex((keyring, modified, .now))
    fingerprint = Self.fingerprint(of: keyring.index)
  }

  static func fingerprint(of index: SymmetricKey) -> String {
    let mac = HMAC<SHA256>.authenticationCode(for: Data("pemis data keys: fingerprint".utf8), using: index)
    return Data(mac.prefix(8)).lowercaseHex
  }

  // MARK: Loading

  /// The keys of a data directory: `PEMIS_DATA_KEY`'s text when `environment` is set, else the
  /// file. A missing file is created with new keys only when `create` is set (a new data
  /// directory, or one whose data was never sealed): otherwise it is an error that says where
  /// the key was looked for.
  public static func load(file: String, environment: String? = nil, create: Bool) throws -> DataKeys {
    if let environment, !environment.isEmpty {
      return DataKeys(keyring: try parse(environment.replacingOccurrences(of: ";", with: "\n"), from: "PEMIS_DATA_KEY"), source: .environment, modified: nil)
    }
    if !FileManager.default.fileExists(atPath: file) {
      guard create else {
        throw StoreError(
          .failedPrecondition,
          "数据密钥缺失 the data key is missing: \(file) does not exist, and the data was sealed with a key (fingerprint in the registry). "
            + "Restore the key file from its backup, set dataKeyFile to where it is, or set PEMIS_DATA_KEY")
      }
      try write(generatedText(), to: file)
    }
    let (text, modified) = try read(file)
    return DataKeys(keyring: try parse(text, from: file), source: .file(file), modified: modified)
  }

  /// Where a data directory's key file is when none is configured: beside the directory, its
  /// path with `.key` (`./data` → `./data.key`), so it is never copied with the data.
  public static func defaultFile(forDataDirectory directory: String) -> String {
    var directory = directory
    while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
    return directory + ".key"
  }

  /// The keys of a data directory for a tool that opens it as the server does: `PEMIS_DATA_KEY`,
  /// or `file` (default ``defaultFile(forDataDirectory:)``), created only for a directory whose
  /// data was never sealed.
  public static func forDataDirectory(_ directory: String, file: String? = nil, environment: String? = nil) throws -> DataKeys {
    let sealed = try Registry.keyFingerprint(directory: directory) != nil
    return try load(file: file ?? defaultFile(forDataDirectory: directory), environment: environment, create: !sealed)
  }

  /// New keys in memory, for tests and tools that make a data directory of their own.
  public static func ephemeral() -> DataKeys {
    DataKeys(keyring: try! parse(generatedText(), from: "memory"), source: .memory, modified: nil)
  }

  /// The text of a new key file: an index key and data key 1, active.
  public static func generatedText() -> String {
    """
    # PEMIS data keys (docs/OPERATIONS.md, "Encryption at rest").
    # Keep this file outside the data directory, readable by the server's user only, and back it
    # up apart from the data: without it the sealed fields of every child cannot be read.
    index \(newKey())
    data 1 \(newKey()) active

    """
  }

  static func newKey() -> String { SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString() }

  static func read(_ file: String) throws -> (String, Date?) {
    do {
      let text = try String(contentsOfFile: file, encoding: .utf8)
      let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
      return (text, modified)
    } catch {
      throw StoreError(.failedPrecondition, "数据密钥无法读取 the data key file \(file) cannot be read by this user: \(error.localizedDescription)")
    }
  }

  /// Writes a key file readable by its owner only, atomically (a rename), so a reader sees the
  /// old file or the new one.
  static func write(_ text: String, to file: String) throws {
    let temporary = file + ".new"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
      throw StoreError(.failedPrecondition, "the data key file \(file) cannot be written here (a missing directory, or no permission)")
    }
    // rename(2) replaces the old file in one step; Foundation's replaceItemAt does not on Linux.
    guard rename(temporary, file) == 0 else {
      let reason = String(cString: strerror(errno))
      try? FileManager.default.removeItem(atPath: temporary)
      throw StoreError(.failedPrecondition, "the data key file \(file) cannot be replaced: \(reason)")
    }
  }

  /// Parses a key file; every mistake names its line.
  static func parse(_ text: String, from name: String) throws -> Keyring {
    var index: SymmetricKey?
    var data: [UInt32: SymmetricKey] = [:]
    var active: [UInt32] = []
    func key(_ text: Substring, line: Int) throws -> SymmetricKey {
      guard let bytes = Data(base64Encoded: String(text)), bytes.count == 32 else {
        throw StoreError(.failedPrecondition, "\(name), line \(line): a key is 32 bytes in base64 (44 characters)")
      }
      return SymmetricKey(data: bytes)
    }
    for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = number + 1
      let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
      guard let first = words.first, !first.hasPrefix("#") else { continue }
      switch first {
      case "index" where words.count == 2:
        guard index == nil else { throw StoreError(.failedPrecondition, "\(name), line \(line): a second index key") }
        index = try key(words[1], line: line)
      case "data" where words.count == 3 || (words.count == 4 && words[3] == "active"):
        guard let id = UInt32(words[1]), id > 0 else {
          throw StoreError(.failedPrecondition, "\(name), line \(line): a data key's number is a whole number from 1")
        }
        guard data[id] == nil else { throw StoreError(.failedPrecondition, "\(name), line \(line): data key \(id) appears twice") }
        data[id] = try key(words[2], line: line)
        if words.count == 4 { active.append(id) }
      default:
        throw StoreError(
          .failedPrecondition, "\(name), line \(line): expected 'index KEY' or 'data NUMBER KEY [active]'")
      }
    }
    guard let index else { throw StoreError(.failedPrecondition, "\(name): no index key ('index KEY')") }
    guard !data.isEmpty else { throw StoreError(.failedPrecondition, "\(name): no data key ('data 1 KEY active')") }
    guard active.count <= 1 else { throw StoreError(.failedPrecondition, "\(name): more than one data key is marked active") }
    return Keyring(index: index, data: data, active: active.first ?? data.keys.max()!)
  }

  /// The file's text with a new data key, active; the others stay, to read what they sealed.
  static func rotatedText(_ text: String, from name: String) throws -> (text: String, id: UInt32) {
    let keyring = try parse(text, from: name)
    let id = keyring.data.keys.max()! + 1
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
      let words = line.split(separator: " ")
      guard words.first == "data", words.count == 4 else { return String(line) }
      return words.prefix(3).joined(separator: " ")
    }
    while lines.last == "" { lines.removeLast() }
    lines.append("data \(id) \(newKey()) active")
    return (lines.joined(separator: "\n") + "\n", id)
  }

  /// Adds a new active data key to the key file (`pemis-server key rotate`): from now on the
  /// server seals with it, once it re-read the file.
  public func rotateFile() throws -> UInt32 {
    guard case .file(let file) = source else {
      throw StoreError(
        .failedPrecondition,
        "the keys come from PEMIS_DATA_KEY: add a data key to its text ('data N KEY active'), restart the server, then re-seal with `pemis-server key reseal`")
    }
    let (text, _) = try Self.read(file)
    let rotated = try Self.rotatedText(text, from: file)
    try Self.write(rotated.text, to: file)
    try reload(force: true)
    return rotated.id
  }

  /// Reads the file again when it changed (or at once with `force`). The index key must be the
  /// same: another one would make every lookup key miss.
  func reload(force: Bool) throws {
    guard case .file(let file) = source else { return }
    let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
    let stale = state.withLock { state -> Bool in
      state.checked = .now
      return force || modified != state.modified
    }
    guard stale else { return }
    let (text, readModified) = try Self.read(file)
    let keyring = try Self.parse(text, from: file)
    guard Self.fingerprint(of: keyring.index) == fingerprint else {
      throw StoreError(.failedPrecondition, "\(file): the index key changed; it is never rotated (lookup keys depend on it)")
    }
    state.withLock { $0 = (keyring, readModified, .now) }
  }

  /// The number of the key new values are sealed with.
  public var activeKey: UInt32 {
    refreshIfDue()
    return state.withLock { $0.keyring.active }
  }

  /// The numbers of the data keys held.
  public var keyNumbers: [UInt32] { state.withLock { $0.keyring.data.keys.sorted() } }

  private func refreshIfDue() {
    let due = state.withLock { ContinuousClock.now - $0.checked >= Self.recheckInterval }
    if due { try? reload(force: false) }
  }

  // MARK: Sealing

  static let prefix = "enc:"

  /// Whether a stored text is a sealed value, and under which key.
  public static func sealingKey(of text: String) -> UInt32? {
    guard text.hasPrefix(prefix) else { return nil }
    let rest = text.utf8.dropFirst(prefix.utf8.count)
    guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else { return nil }
    return UInt32(String(decoding: rest[..<colon], as: UTF8.self))
  }

  /// Seals a text under the active key. `context` (the table and column) is authenticated with
  /// it: a value copied into another column does not open there. The empty text stays empty
  /// (it says nothing a sealed value's length would not).
  public func seal(_ text: String, context: String) -> String {
    guard !text.isEmpty else { return "" }
    let (id, key) = activeSealingKey()
    let box = try! AES.GCM.seal(Data(text.utf8), using: key, authenticating: Data(context.utf8))
    return "\(Self.prefix)\(id):\(box.combined!.base64EncodedString())"
  }

  /// Opens what ``seal(_:context:)`` made. A text that is not sealed is refused (a value a
  /// migration missed, or one written behind the server's back), as is a wrong key or context.
  public func open(_ text: String, context: String) throws -> String {
    guard !text.isEmpty else { return "" }
    guard let id = Self.sealingKey(of: text) else {
      throw StoreError(.dataLoss, "a protected field (\(context)) is stored unsealed; run `pemis-server key reseal`")
    }
    let body = text.dropFirst(Self.prefix.count + String(id).count + 1)
    guard let bytes = Data(base64Encoded: String(body)) else {
      throw StoreError(.dataLoss, "a sealed field (\(context)) is damaged; restore it from a backup")
    }
    let plain = try openBytes(bytes, id: id, context: context)
    return String(decoding: plain, as: UTF8.self)
  }

  /// Seals bytes (an export file): a version byte, the key number (4 bytes) and AES-GCM's box.
  public func seal(data: Data, context: String) -> Data {
    let (id, key) = activeSealingKey()
    let box = try! AES.GCM.seal(data, using: key, authenticating: Data(context.utf8))
    var out = Data([1])
    withUnsafeBytes(of: id.bigEndian) { out.append(contentsOf: $0) }
    out.append(box.combined!)
    return out
  }

  public func open(data: Data, context: String) throws -> Data {
    let bytes = Array(data)
    guard bytes.count > 5, bytes[0] == 1 else {
      throw StoreError(.dataLoss, "a sealed file (\(context)) is damaged or unsealed; restore it from a backup")
    }
    let id = bytes[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    return try openBytes(Data(bytes[5...]), id: id, context: context)
  }

  /// The key number of a sealed file.
  public static func sealingKey(of data: Data) -> UInt32? {
    let bytes = Array(data.prefix(5))
    guard bytes.count == 5, bytes[0] == 1 else { return nil }
    return bytes[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
  }

  private func activeSealingKey() -> (UInt32, SymmetricKey) {
    refreshIfDue()
    return state.withLock { ($0.keyring.active, $0.keyring.data[$0.keyring.active]!) }
  }

  private func openBytes(_ bytes: Data, id: UInt32, context: String) throws -> Data {
    var key = state.withLock { $0.keyring.data[id] }
    if key == nil {
      // Sealed by a rotation this process has not seen yet: the file has the key by now.
      try? reload(force: true)
      key = state.withLock { $0.keyring.data[id] }
    }
    guard let key else {
      throw StoreError(
        .failedPrecondition,
        "数据密钥不全 a field (\(context)) is sealed with data key \(id), which the key file does not hold; restore the key file from its backup")
    }
    do {
      return try AES.GCM.open(AES.GCM.SealedBox(combined: bytes), using: key, authenticating: Data(context.utf8))
    } catch {
      throw StoreError(
        .dataLoss, "a sealed field (\(context)) does not open with data key \(id): the value is damaged, or the key file is not the one it was sealed with")
    }
  }

  // MARK: Searchable keys

  /// A searchable key of a value: 128 bits of HMAC-SHA256 under the index key, in hex, after a
  /// purpose ("record", "document"), so equal values of different kinds do not match.
  public func lookupKey(_ value: String, purpose: String) -> String {
    let index = state.withLock { $0.keyring.index }
    let mac = HMAC<SHA256>.authenticationCode(for: Data("\(purpose)\u{0}\(value)".utf8), using: index)
    return Data(mac.prefix(16)).lowercaseHex
  }
}
