/// Rules for account names and passwords.
public enum AccountRules {
  /// 3–32 characters: lower-case ASCII letters, digits, '.', '_' and '-', starting with a letter.
  public static func validateUsername(_ name: String, field: String = "username") throws(DomainError) {
    let bytes = Array(name.utf8)
    guard (3...32).contains(bytes.count) else {
      throw DomainError(field: field, rule: "length", "must be 3 to 32 characters")
    }
    guard let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else {
      throw DomainError(field: field, rule: "format", "must start with a lower-case letter")
    }
    for byte in bytes {
      let ok = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
      guard ok else {
        throw DomainError(field: field, rule: "format", "may contain only a-z, 0-9, '.', '_' and '-'")
      }
    }
  }

  /// At least 10 characters, with at least one letter and one digit, and not the username.
  public static func validatePassword(_ password: String, username: String, field: String = "new_password") throws(DomainError) {
    guard password.count >= 10 else {
      throw DomainError(field: field, rule: "length", "must be at least 10 characters")
    }
    guard password.count <= 128 else {
      throw DomainError(field: field, rule: "length", "must be at most 128 characters")
    }
    guard password.contains(where: \.isLetter), password.contains(where: \.isNumber) else {
      throw DomainError(field: field, rule: "strength", "must contain at least one letter and one digit")
    }
    guard password.lowercased() != username.lowercased() else {
      throw DomainError(field: field, rule: "strength", "must not be the username")
    }
  }

  /// Consecutive failed logins that lock an account.
  public static let maxFailedLogins = 5
  /// How long a lockout lasts.
  public static let lockoutSeconds: Int64 = 15 * 60
  /// Accounts unused this long are sealed until a district administrator unseals them.
  public static let sealAfterSeconds: Int64 = 183 * 24 * 3600
  /// How long a session lasts.
  public static let sessionSeconds: Int64 = 12 * 3600
}
