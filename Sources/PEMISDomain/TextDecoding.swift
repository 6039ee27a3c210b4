#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Text encodings an import file may come in: UTF-8, or GB18030 (which the national template
/// is usually saved in by spreadsheet programs on Chinese Windows).
public enum TextEncoding: String, CaseIterable, Hashable, Sendable {
  case utf8 = "utf-8"
  case gb18030

  /// "utf-8", "utf8", "gb18030", "gbk" (a subset of GB18030); nil for anything else.
  public init?(name: String) {
    switch name.lowercased() {
    case "utf-8", "utf8": self = .utf8
    case "gb18030", "gbk", "gb2312": self = .gb18030
    default: return nil
    }
  }

  /// The text, with a UTF-8 byte-order mark dropped. With no encoding given, valid UTF-8 is read
  /// as UTF-8 and anything else as GB18030.
  public static func decode(_ bytes: [UInt8], as encoding: TextEncoding?) throws(DomainError) -> (text: String, encoding: TextEncoding) {
    let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
    switch encoding {
    case .utf8:
      guard let text = String(validating: body, as: UTF8.self) else {
        throw DomainError(field: "encoding", rule: "utf-8", "the file is not valid UTF-8; if it was saved as GB18030 (GBK), say so")
      }
      return (text, .utf8)
    case .gb18030:
      return (try gb18030(body), .gb18030)
    case nil:
      if let text = String(validating: body, as: UTF8.self) { return (text, .utf8) }
      return (try gb18030(body), .gb18030)
    }
  }

  /// GB18030 through the C library's iconv, which every Linux and macOS system carries.
  static func gb18030(_ bytes: [UInt8]) throws(DomainError) -> String {
    let converter = iconv_open("UTF-8", "GB18030")
    guard converter != iconv_t(bitPattern: -1) else {
      throw DomainError(field: "encoding", rule: "gb18030", "this system's iconv cannot read GB18030")
    }
    defer { iconv_close(converter) }
    var input = bytes.map { CChar(bitPattern: $0) }
    // UTF-8 takes at most 4 bytes for each character GB18030 spends 1, 2 or 4 on.
    var output = [CChar](repeating: 0, count: bytes.count * 3 + 4)
    let inputCount = input.count
    let outputCount = output.count
    let (converted, consumed, produced): (Int, Int, Int) = input.withUnsafeMutableBufferPointer { inBuffer in
      output.withUnsafeMutableBufferPointer { outBuffer in
        var inPointer: UnsafeMutablePointer<CChar>? = inBuffer.baseAddress
        var outPointer: UnsafeMutablePointer<CChar>? = outBuffer.baseAddress
        var inLeft = inputCount
        var outLeft = outputCount
        let result = iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft)
        return (result, inputCount - inLeft, outputCount - outLeft)
      }
    }
    guard converted != -1 else {
      throw DomainError(field: "encoding", rule: "gb18030", "the file is neither UTF-8 nor GB18030 (bad bytes at offset \(consumed))")
    }
    let utf8 = output[..<produced].map { UInt8(bitPattern: $0) }
    guard let text = String(validating: utf8, as: UTF8.self) else {
      throw DomainError(field: "encoding", rule: "gb18030", "the file could not be read as GB18030")
    }
    return text
  }
}
