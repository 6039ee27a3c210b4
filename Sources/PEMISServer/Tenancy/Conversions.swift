internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

extension AccountRecord {
  func proto(now: Int64) -> Pemis_V1_Account {
    .with {
      $0.username = username
      $0.role = role.proto
      $0.kindergartenCode = kindergartenCode ?? ""
      $0.displayName = displayName
      $0.state =
        disabled ? .disabled : sealed ? .sealed : lockedUntil > now ? .locked : .active
      $0.createdAt = createdAt
      $0.lastLoginAt = lastLoginAt
      $0.passwordChangeRequired = mustChangePassword
      $0.classes = classes
      $0.lockedUntil = lockedUntil > now ? lockedUntil : 0
    }
  }
}

extension ApplicationForm {
  init(_ proto: Pemis_V1_ApplicationForm) throws {
    guard let ownership = Ownership(proto.ownership) else {
      throw RPCError(code: .invalidArgument, message: "form.ownership: must be public or private")
    }
    self.init(
      name: proto.name, ownership: ownership, licenceNumber: proto.licenceNumber, address: proto.address,
      sponsor: proto.sponsor, approvalDate: CalendarDate(proto.approvalDate), openingDate: CalendarDate(proto.openingDate),
      childrenCount: Int(proto.childrenCount), staffCount: Int(proto.staffCount), property: proto.property)
    let violations = self.violations()
    if !violations.isEmpty { throw FieldViolationsError(violations) }
  }

  var proto: Pemis_V1_ApplicationForm {
    .with {
      $0.name = name
      $0.ownership = ownership.proto
      $0.licenceNumber = licenceNumber
      $0.address = address
      $0.sponsor = sponsor
      $0.approvalDate = approvalDate.proto
      $0.openingDate = openingDate.proto
      $0.childrenCount = Int32(childrenCount)
      $0.staffCount = Int32(staffCount)
      $0.property = property
    }
  }
}

extension CalendarDate {
  init(_ proto: Pemis_V1_Date) {
    self.init(year: Int(proto.year), month: Int(proto.month), day: Int(proto.day))
  }

  var proto: Pemis_V1_Date {
    .with {
      $0.year = Int32(year)
      $0.month = Int32(month)
      $0.day = Int32(day)
    }
  }
}

extension OnboardingState {
  var proto: Pemis_V1_OnboardingState {
    switch self {
    case .submitted: .submitted
    case .returned: .returned
    case .approved: .approved
    case .admitted: .admitted
    case .committed: .committed
    case .active: .active
    }
  }

  init?(_ proto: Pemis_V1_OnboardingState) {
    switch proto {
    case .submitted: self = .submitted
    case .returned: self = .returned
    case .approved: self = .approved
    case .admitted: self = .admitted
    case .committed: self = .committed
    case .active: self = .active
    case .unspecified, .UNRECOGNIZED: return nil
    }
  }
}

/// Several broken rules at once: INVALID_ARGUMENT naming each field and rule in the message, and
/// the same list as `pemis.v1.FieldViolations` in the "pemis-field-violations-bin" trailer.
struct FieldViolationsError: Error {
  var violations: [DomainError]
  init(_ violations: [DomainError]) { self.violations = violations }

  var rpcError: RPCError {
    var metadata: Metadata = [:]
    let detail = Pemis_V1_FieldViolations.with {
      $0.violations = violations.map { v in
        .with {
          $0.field = v.field
          $0.rule = v.rule
          $0.description_p = v.message
        }
      }
    }
    if let bytes: [UInt8] = try? detail.serializedBytes() { metadata.addBinary(bytes, forKey: "pemis-field-violations-bin") }
    return RPCError(
      code: .invalidArgument, message: violations.map(\.description).joined(separator: "; "), metadata: metadata)
  }
}

/// Page size and offset from a PageRequest: default 50, at most 500; the token is an offset.
struct Page {
  var offset: Int
  var limit: Int

  init(_ request: Pemis_V1_PageRequest) throws {
    limit = request.pageSize == 0 ? 50 : Int(request.pageSize)
    guard (1...500).contains(limit) else {
      throw RPCError(code: .invalidArgument, message: "page.page_size: must be between 1 and 500")
    }
    if request.pageToken.isEmpty {
      offset = 0
    } else {
      guard let value = Int(request.pageToken), value >= 0 else {
        throw RPCError(code: .invalidArgument, message: "page.page_token: not a token this server issued")
      }
      offset = value
    }
  }

  func info(total: Int, returned: Int) -> Pemis_V1_PageInfo {
    .with {
      $0.totalCount = Int64(total)
      $0.nextPageToken = offset + returned < total ? String(offset + returned) : ""
    }
  }
}
