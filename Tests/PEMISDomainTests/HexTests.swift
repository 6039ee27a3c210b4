import Foundation
import Testing

@testable import PEMISDomain

@Suite("Hexadecimal digests")
struct HexTests {
  @Test("every byte is two lowercase digits, as the stored token and audit hashes always were")
  func everyByte() {
    let bytes = (0...255).map(UInt8.init)
    #expect(bytes.lowercaseHex == bytes.map { String(format: "%02x", $0) }.joined())
    #expect([UInt8]().lowercaseHex == "")
    #expect([0x00, 0x0f, 0xa0, 0xff].lowercaseHex == "000fa0ff")
  }
}
