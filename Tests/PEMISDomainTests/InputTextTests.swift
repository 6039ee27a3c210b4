import PEMISDomain
import Testing

@Suite("Input text: the rules of each kind of field, and escaping for the log and the terminal")
struct InputTextTests {
  @Test("every kind refuses C0, DEL, C1, line separators and bidi overrides; only notes keep line breaks")
  func controlCharacters() {
    for kind in InputKind.allCases {
      for scalar: Unicode.Scalar in ["\u{0}", "\u{1}", "\u{1B}", "\u{7F}", "\u{85}", "\u{9F}", "\u{2028}", "\u{202E}", "\u{2066}"] {
        let violation = InputText.violation("ab\(scalar)c", kind: kind, field: "f")
        #expect(violation?.rule == "control_character", "\(kind) U+\(String(scalar.value, radix: 16))")
        #expect(violation?.field == "f")
        #expect(violation?.description.hasPrefix("f: 含有") == true)
      }
      let lines = InputText.violation("one\ntwo\r\nthree", kind: kind, field: "f")
      if kind == .freeText {
        #expect(lines == nil)
      } else {
        #expect(lines?.rule == "single_line", "\(kind)")
        #expect(lines?.message.contains("character 4") == true)
      }
    }
    #expect(InputText.violation("天津市滨海新区第一幼儿园", kind: .name, field: "name") == nil)
    #expect(InputText.violation("tab\there", kind: .freeText, field: "note")?.rule == "control_character")
  }

  @Test("each kind has a byte limit, checked in UTF-8 bytes")
  func limits() {
    for kind in InputKind.allCases {
      let fits = String(repeating: "a", count: kind.maxBytes)
      #expect(InputText.violation(fits, kind: kind, field: "f") == nil, "\(kind)")
      let over = InputText.violation(fits + "a", kind: kind, field: "f")
      #expect(over?.rule == "max_bytes", "\(kind)")
      #expect(over?.message.contains("\(kind.maxBytes + 1)") == true)
    }
    // 22 Chinese characters are 66 bytes: over a code's 64.
    #expect(InputText.violation(String(repeating: "园", count: 22), kind: .code, field: "f")?.rule == "max_bytes")
    #expect(InputText.violation(byteCount: InputText.maxBytesField, field: "chunk") == nil)
    #expect(InputText.violation(byteCount: InputText.maxBytesField + 1, field: "chunk")?.rule == "max_bytes")
    #expect(InputText.violation(unknownByteCount: InputText.maxUnknownBytes + 1, field: "request")?.rule == "unknown_fields")
  }

  @Test("a token is visible ASCII only")
  func token() {
    #expect(InputText.violation("Bearer abc-DEF_123", kind: .token, field: "authorization") == nil)
    #expect(InputText.violation("Bearer 密码", kind: .token, field: "authorization")?.rule == "ascii")
  }

  @Test("fields are classified by name, unknown names get the tight default")
  func classification() {
    #expect(InputText.kind(ofField: "kindergarten_code") == .code)
    #expect(InputText.kind(ofField: "username") == .username)
    #expect(InputText.kind(ofField: "new_password") == .password)
    #expect(InputText.kind(ofField: "display_name") == .name)
    #expect(InputText.kind(ofField: "id_document_number") == .idNumber)
    #expect(InputText.kind(ofField: "address") == .text)
    #expect(InputText.kind(ofField: "reason") == .freeText)
    #expect(InputText.kind(ofField: "something_new") == .unclassified)
    #expect(InputKind.unclassified.maxBytes <= InputKind.text.maxBytes && !InputKind.unclassified.allowsLineBreaks)
  }

  @Test("escaping: clean values unchanged; controls, line breaks and backslashes escaped; long values cut on a character")
  func escaping() {
    #expect(InputText.escaped("王丽 wang.li", maxBytes: 128) == "王丽 wang.li")
    #expect(InputText.escaped("a\u{0}b\nc\u{1B}[31m\\n\u{202E}", maxBytes: 128) == "a\\u{0}b\\nc\\u{1B}[31m\\\\n\\u{202E}")
    let long = String(repeating: "长", count: 1000)
    let cut = InputText.escaped(long, maxBytes: 128)
    #expect(cut.utf8.count <= 128)
    #expect(cut.hasPrefix("长长长") && cut.hasSuffix("bytes]"))
    #expect(!cut.contains("\u{FFFD}"))
    // What was left out is counted in bytes of the original.
    let kept = cut.prefix { $0 == "长" }.count
    #expect(cut.hasSuffix("…[+\(3000 - kept * 3) bytes]"))
    // Escapes count against the bound too.
    let controls = InputText.escaped(String(repeating: "\u{0}", count: 10_000), maxBytes: 200)
    #expect(controls.utf8.count <= 200 && controls.hasPrefix("\\u{0}\\u{0}"))
    // Fits exactly: not cut.
    #expect(InputText.escaped(String(repeating: "a", count: 128), maxBytes: 128) == String(repeating: "a", count: 128))
    #expect(InputText.escaped(String(repeating: "a", count: 5000), maxBytes: .max).utf8.count == 5000)
  }
}
