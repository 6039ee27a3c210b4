import Synchronization

/// Numbers that never repeat within one test process, for names and codes that the rules
/// require to be unique (class names, usernames, institution codes, ID numbers). Random
/// numbers were used before and collided now and then, failing a run for no fault of the code.
enum UniqueNumbers {
  /// Starts at 100,000 so every number has six digits: names built from it ("p100001") meet
  /// the length rules (usernames 3-32 characters, terms at least 4) from the first one.
  private static let counter = Atomic<Int>(100_000)

  /// The next number, from 100,001 on.
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
