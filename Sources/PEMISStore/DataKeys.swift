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
///   A sealed value names the key that sealed it (`enc2:<id>:<base64>`), so a rotation
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

  /// One version of the key file: another modification time, inode (a rename over it) or size
  /// means it changed.
  struct FileVersion: Equatable, Sendable {
    var modified: Date?
    var inode: UInt64?
    var size: UInt64?
  }

  /// What the process holds, and when it last looked at the file.
  struct State: Sendable {
    var keyring: Keyring
    var version: FileVersion?
    var checked: ContinuousClock.Instant
    /// When a value under an unknown key last made it read the file: a damaged or planted
    /// value must not make every request read it.
    var forcedRead: ContinuousClock.Instant?
    /// The last reload problem reported, so a lasting one is reported once.
    var problem: String?
  }

  public let source: Source
  let state: Mutex<State>
  /// Hears what goes wrong re-reading the key file (the server logs it): sealing goes on with
  /// the keys held, so nothing else would tell.
  let problems = Mutex<(@Sendable (String) -> Void)?>(nil)
  /// Of the index key: what the registry keeps to tell a wrong key file from the right one.
  public let fingerprint: String

  /// How often sealing looks at the key file's modification time, for a rotation made by
  /// another process.
  static let recheckInterval: Duration = .seconds(2)

  init(keyring: Keyring, source: Source, version: FileVersion?) {
    self.source = source
    state = Mutex(State(keyring: keyring, version: version, checked: .now))
    fingerprint = Self.fingerprint(of: keyring.index)
  }

  static func fingerprint(of index: SymmetricKey) -> String {
    let mac = HMAC<SHA256>.authenticationCode(for: Data("pemis data keys: fingerprint".utf8), using: index)
    return Data(mac.prefix(8)).lowercaseHex
  }

  // MARK: Sealing

  /// A sealed text: `enc2:<key>:<base64 of AES-GCM's box>`, its plaintext padded to whole
  /// blocks of ``paddingBlock`` bytes, so a sealed value's length does not tell one health
  /// status, phone or document type from another.
  static let prefix = "enc2:"
  /// Stop 25's format, unpadded: still opened, re-sealed by the v10 shard migration.
  static let unpaddedPrefix = "enc:"
  static let paddingBlock = 32

  /// Whether a stored text is a sealed value (either format), and under which key.
  public static func sealingKey(of text: String) -> UInt32? { parts(of: text)?.id }

  /// A sealed text's format, key number and base64 body. The number is the decimal digits
  /// `seal` writes and nothing else ("01" and "+1" are damage, not key 1).
  private static func parts(of text: String) -> (padded: Bool, id: UInt32, body: Substring)? {
    guard let format = format(of: text) else { return nil }
    let rest = text.dropFirst(format.prefix.count)
    guard let colon = rest.firstIndex(of: ":") else { return nil }
    let digits = rest[..<colon]
    guard let first = digits.first, first != "0", digits.allSatisfy({ $0.isASCII && $0.isNumber }), let id = UInt32(digits) else {
      return nil
    }
    return (format.padded, id, rest[rest.index(after: colon)...])
  }

  private static func format(of text: String) -> (prefix: String, padded: Bool)? {
    if text.hasPrefix(prefix) { return (prefix, true) }
    if text.hasPrefix(unpaddedPrefix) { return (unpaddedPrefix, false) }
    return nil
  }

  /// Whether a stored text is sealed as ``seal(_:context:)`` seals now: the current format,
  /// under the active key `active`.
  public static func isCurrent(_ text: String, active: UInt32) -> Bool {
    text.hasPrefix(prefix) && sealingKey(of: text) == active
  }

  /// ISO/IEC 7816-4 padding: 0x80, then zeros to a whole block.
  static func padded(_ bytes: Data) -> Data {
    var out = bytes
    out.append(0x80)
    let rest = out.count % paddingBlock
    if rest != 0 { out.append(contentsOf: repeatElement(0, count: paddingBlock - rest)) }
    return out
  }

  static func unpadded(_ bytes: Data) -> Data? {
    guard let mark = bytes.lastIndex(where: { $0 != 0 }), bytes[mark] == 0x80 else { return nil }
    return bytes[bytes.startIndex..<mark]
  }

  /// Seals a text under the active key. `context` (the table and column) is authenticated with
  /// it: a value copied into another column does not open there. The empty text stays empty
  /// (it says nothing a sealed value's length would not).
  public func seal(_ text: String, context: String) -> String {
    guard !text.isEmpty else { return "" }
    let (id, key) = activeSealingKey()
    let box = try! AES.GCM.seal(Self.padded(Data(text.utf8)), using: key, authenticating: Data(context.utf8))
    return "\(Self.prefix)\(id):\(box.combined!.base64EncodedString())"
  }

  /// Opens what ``seal(_:context:)`` made. A text that is not sealed is refused (a value a
  /// migration missed, or one written behind the server's back), as is a wrong key or context.
  public func open(_ text: String, context: String) throws -> String {
    guard !text.isEmpty else { return "" }
    guard Self.format(of: text) != nil else {
      throw StoreError(.dataLoss, "a protected field (\(context)) is stored unsealed; run `pemis-server key reseal`")
    }
    guard let (padded, id, body) = Self.parts(of: text), let bytes = Data(base64Encoded: String(body)) else {
      throw StoreError(.dataLoss, "a sealed field (\(context)) is damaged; restore it from a backup")
    }
    var plain = try openBytes(bytes, id: id, context: context)
    if padded {
      guard let unpadded = Self.unpadded(plain) else {
        throw StoreError(.dataLoss, "a sealed field (\(context)) is damaged (its padding); restore it from a backup")
      }
      plain = unpadded
    }
    return String(decoding: plain, as: UTF8.self)
  }

  /// The value as ``seal(_:context:)`` would store it now, or nil when it already is: the one
  /// rule of migrations, rotations and repairs. A value under an older key or in the old format
  /// is opened and sealed again; one stored unsealed (written behind the server's back, or
  /// missed) is sealed as it is.
  public func resealed(_ text: String, context: String, active: UInt32) throws -> String? {
    guard !text.isEmpty, !Self.isCurrent(text, active: active) else { return nil }
    return seal(Self.format(of: text) == nil ? text : try open(text, context: context), context: context)
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
