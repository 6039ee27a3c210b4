/// Lowercase hexadecimal, two digits a byte: how digests are stored (session tokens, the audit
/// chain). A table lookup: `String(format: "%02x")` per byte went through Foundation's formatter
/// 32 times for every digest, on every call's token check and every audit append.
extension Sequence<UInt8> {
  public var lowercaseHex: String {
    let digits = Array("0123456789abcdef".utf8)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(underestimatedCount * 2)
    for byte in self {
      bytes.append(digits[Int(byte >> 4)])
      bytes.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}
