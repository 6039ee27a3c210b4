import Foundation
import PEMISDomain
import PEMISProto
import SwiftProtobuf

/// A plain-text table: columns padded to the widest cell, counting CJK characters as two columns.
/// Every cell is printed escaped (``printable(_:)``): one table row is one line, whatever the
/// server's records hold.
func printTable(_ header: [String], _ rows: [[String]]) {
  let all = ([header] + rows).map { $0.map(printable) }
  var widths = [Int](repeating: 0, count: header.count)
  for row in all { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], displayWidth(cell)) } }
  for row in all {
    let line = row.enumerated().map { i, cell in
      i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - displayWidth(cell))
    }.joined(separator: "  ")
    print(line)
  }
  if rows.isEmpty { print("(none)") }
}

/// A value from the server as the terminal may show it: control characters, line breaks,
/// terminal escapes and bidi overrides written as `\n`, `\u{1B}`, so no value can forge a line or
/// restyle the terminal. Long values are not cut: this is what the record holds.
func printable(_ value: String) -> String {
  InputText.escaped(value, maxBytes: .max)
}

func displayWidth(_ text: String) -> Int {
  text.unicodeScalars.reduce(0) { width, scalar in
    let wide = (0x1100...0x115F).contains(scalar.value) || (0x2E80...0xA4CF).contains(scalar.value)
      || (0xAC00...0xD7A3).contains(scalar.value) || (0xF900...0xFAFF).contains(scalar.value)
      || (0xFE30...0xFE4F).contains(scalar.value) || (0xFF00...0xFF60).contains(scalar.value)
      || (0xFFE0...0xFFE6).contains(scalar.value)
    return width + (wide ? 2 : 1)
  }
}

func formatTime(_ seconds: Int64) -> String {
  guard seconds > 0 else { return "-" }
  let formatter = DateFormatter()
  formatter.dateFormat = "yyyy-MM-dd HH:mm"
  formatter.timeZone = TimeZone(identifier: "Asia/Shanghai")
  return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
}

func roleName(_ role: Pemis_V1_Role) -> String {
  switch role {
  case .preschoolOffice: "preschool_office"
  case .vocationalOffice: "vocational_office"
  case .planningOffice: "planning_office"
  case .financeOffice: "finance_office"
  case .districtAdmin: "district_admin"
  case .exportApprover: "export_approver"
  case .principal: "principal"
  case .administrator: "administrator"
  case .classLeader: "class_leader"
  case .financeStaff: "finance_staff"
  case .unspecified, .UNRECOGNIZED: "-"
  }
}

func parseRole(_ text: String) -> Pemis_V1_Role? {
  let all: [Pemis_V1_Role] = [
    .preschoolOffice, .vocationalOffice, .planningOffice, .financeOffice, .districtAdmin, .exportApprover, .principal, .administrator,
    .classLeader, .financeStaff,
  ]
  return all.first { roleName($0) == text }
}

func stateName(_ state: Pemis_V1_AccountState) -> String {
  switch state {
  case .active: "active"
  case .disabled: "disabled"
  case .sealed: "sealed"
  case .locked: "locked"
  case .unspecified, .UNRECOGNIZED: "-"
  }
}

func onboardingStateName(_ state: Pemis_V1_OnboardingState) -> String {
  switch state {
  case .submitted: "submitted"
  case .returned: "returned"
  case .approved: "approved"
  case .admitted: "admitted"
  case .committed: "committed"
  case .active: "active"
  case .unspecified, .UNRECOGNIZED: "-"
  }
}

func ownershipName(_ ownership: Pemis_V1_Ownership) -> String {
  switch ownership {
  case .public: "public"
  case .private: "private"
  case .unspecified, .UNRECOGNIZED: "-"
  }
}

/// Prints a protobuf message as JSON with the .proto field names.
func printJSON(message: some SwiftProtobuf.Message) throws {
  var options = JSONEncodingOptions()
  options.preserveProtoFieldNames = true
  print(try message.jsonString(options: options))
}
