internal import Crypto
internal import CryptoExtras
internal import Foundation
internal import NIOPosix
internal import PEMISDomain

/// Password hashing with scrypt (a memory-hard, slow KDF from swift-crypto). Stored as
/// `scrypt$<log2 N>$<r>$<p>$<salt base64>$<hash base64>`, so the cost can rise later without
/// invalidating stored hashes.
struct PasswordHasher: Sendable {
  /// log2 of scrypt's N. 15 (32 MiB, about 0.1 s here) in production; tests may lower it.
  var costLog2: Int

  func hash(_ password: String) throws -> String {
    var salt = [UInt8](repeating: 0, count: 16)
    for i in salt.indices { salt[i] = UInt8.random(in: 0...255) }
    let key = try derive(password, salt: salt, costLog2: costLog2, r: 8, p: 1)
    return "scrypt$\(costLog2)$8$1$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
  }

  /// ``hash(_:)`` on NIO's blocking-work thread pool: scrypt takes tens of milliseconds of CPU,
  /// and on the cooperative pool (two threads on a two-core server) it would stall every call.
  func hashOffPool(_ password: String) async throws -> String {
    try await NIOThreadPool.singleton.runIfActive { try self.hash(password) }
  }

  /// ``verify(_:against:)`` on NIO's blocking-work thread pool.
  func verifyOffPool(_ password: String, against stored: String) async -> Bool {
    (try? await NIOThreadPool.singleton.runIfActive { self.verify(password, against: stored) }) ?? false
  }

  /// Whether `password` matches `stored`, compared in constant time.
  func verify(_ password: String, against stored: String) -> Bool {
    let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
    guard parts.count == 6, parts[0] == "scrypt", let cost = Int(parts[1]), (1...22).contains(cost),
      let r = Int(parts[2]), let p = Int(parts[3]),
      let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
      let actual = try? derive(password, salt: Array(salt), costLog2: cost, r: r, p: p)
    else { return false }
    guard actual.count == expected.count else { return false }
    var difference: UInt8 = 0
    for (a, b) in zip(actual, expected) { difference |= a ^ b }
    return difference == 0
  }

  private func derive(_ password: String, salt: [UInt8], costLog2: Int, r: Int, p: Int) throws -> [UInt8] {
    let key = try KDF.Scrypt.deriveKey(
      from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: 1 << costLog2, blockSize: r,
      parallelism: p)
    return key.withUnsafeBytes { Array($0) }
  }
}

enum Secrets {
  /// A one-time password: 12 characters from an alphabet without look-alikes (no 0/O, 1/l/I),
  /// always with letters and digits. Read out over the phone or printed on the account slip.
  static func oneTimePassword() -> String {
    let letters = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ")
    let digits = Array("23456789")
    var characters = (0..<10).map { _ in (letters + digits).randomElement()! }
    characters.append(letters.randomElement()!)
    characters.append(digits.randomElement()!)
    return String(characters.shuffled())
  }

  /// A session token: 32 random bytes, base64url.
  static func sessionToken() -> String {
    var bytes = [UInt8](repeating: 0, count: 32)
    for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
    return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  /// What the registry stores instead of the token.
  static func tokenHash(_ token: String) -> String {
    SHA256.hash(data: Data(token.utf8)).lowercaseHex
  }
}

/// What tools outside the server may use of its secrets handling.
public enum ServerSecrets {
  /// A scrypt hash in the server's stored format (seeding load-test districts).
  public static func hashPassword(_ password: String, costLog2: Int) throws -> String {
    try PasswordHasher(costLog2: costLog2).hash(password)
  }
}
