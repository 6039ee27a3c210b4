import Synchronization

/// Numbers that never repeat within one test process, for names and codes that the rules
/// require to be unique (class names, usernames, institution codes, ID numbers). Random
/// numbers were used before and collided now and then, failing a run for no fault of the code.
enum UniqueNumbers {
  private static let counter = Atomic<Int>(0)

  /// The next number, starting at 1.
  static func next() -> Int {
    counter.add(1, ordering: .relaxed).newValue
  }

  /// The next number as exactly `digits` decimal digits (wrapping after 10^digits − 1).
  static func next(digits: Int) -> String {
    var modulus = 1
    for _ in 0..<digits { modulus *= 10 }
    let value = next() % modulus
    let text = String(value)
    return String(repeating: "0", count: digits - text.count) + text
  }
}
