/// A kindergarten's basic information (Art. 13), with its rules.
public struct KindergartenProfile: Hashable, Sendable, Codable {
  public var name = ""
  public var address = ""
  public var level = "unrated"
  public var licenceNumber = ""
  public var sponsor = ""
  public var principalName = ""
  public var contactPhone = ""
  public var contactEmail = ""
  public var buildingArea = 0
  public var outdoorArea = 0
  public var approvedCapacity = 0

  public static let levels: Set<String> = ["unrated", "level3", "level2", "level1", "model"]

  public init() {}

  public func violations() -> [DomainError] {
    var errors: [DomainError] = []
    func required(_ value: String, _ field: String, max: Int) {
      if value.trimmingWhitespace.isEmpty {
        errors.append(DomainError(field: "profile.\(field)", rule: "required", "is required"))
      } else if value.count > max {
        errors.append(DomainError(field: "profile.\(field)", rule: "max_length", "must be at most \(max) characters"))
      }
    }
    required(name, "name", max: 100)
    required(address, "address", max: 200)
    required(licenceNumber, "licence_number", max: 50)
    required(sponsor, "sponsor", max: 100)
    required(principalName, "principal_name", max: 50)
    if !Self.levels.contains(level) {
      errors.append(DomainError(field: "profile.level", rule: "enum", "must be one of unrated, level3, level2, level1, model"))
    }
    let phoneOK = (7...20).contains(contactPhone.count)
      && contactPhone.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "-" || $0 == "+" || $0 == " ") }
    if !phoneOK {
      errors.append(DomainError(field: "profile.contact_phone", rule: "format", "must be 7-20 digits, '-', '+' or spaces"))
    }
    if !contactEmail.isEmpty && (!contactEmail.contains("@") || contactEmail.count > 100 || contactEmail.contains(" ")) {
      errors.append(DomainError(field: "profile.contact_email", rule: "format", "is not an e-mail address"))
    }
    for (value, field) in [(buildingArea, "building_area"), (outdoorArea, "outdoor_area")] where !(0...1_000_000).contains(value) {
      errors.append(DomainError(field: "profile.\(field)", rule: "range", "must be 0 to 1000000 square metres"))
    }
    if !(0...5000).contains(approvedCapacity) {
      errors.append(DomainError(field: "profile.approved_capacity", rule: "range", "must be 0 to 5000 children"))
    }
    return errors
  }
}

public enum Grade: String, CaseIterable, Hashable, Sendable, Codable {
  case small, middle, large, mixed

  /// The national class-size norms: a warning, not a limit.
  public var typicalSize: ClosedRange<Int> {
    switch self {
    case .small: 20...25
    case .middle: 25...30
    case .large: 30...35
    case .mixed: 1...30
    }
  }
}

/// A class (教学班).
public struct KindergartenClass: Hashable, Sendable, Codable {
  public var name: String
  public var grade: Grade
  public var schoolYear: String
  public var headTeacherStaffId: String?
  public var capacity: Int

  public init(name: String, grade: Grade, schoolYear: String, headTeacherStaffId: String?, capacity: Int) {
    self.name = name
    self.grade = grade
    self.schoolYear = schoolYear
    self.headTeacherStaffId = headTeacherStaffId
    self.capacity = capacity
  }

  public func violations() -> [DomainError] {
    var errors: [DomainError] = []
    if name.trimmingWhitespace.isEmpty || name.count > 30 {
      errors.append(DomainError(field: "class.name", rule: "required", "is required, at most 30 characters"))
    }
    let years = schoolYear.split(separator: "-").compactMap { Int($0) }
    if years.count != 2 || years[1] != years[0] + 1 || !(2000...2100).contains(years[0]) || schoolYear.count != 9 {
      errors.append(DomainError(field: "class.school_year", rule: "format", "must be like 2026-2027"))
    }
    if !(1...60).contains(capacity) {
      errors.append(DomainError(field: "class.capacity", rule: "range", "must be 1 to 60"))
    }
    return errors
  }

  /// Where the class departs from the national norms.
  public var warnings: [String] {
    grade.typicalSize.contains(capacity)
      ? [] : ["a \(grade.rawValue) class usually has \(grade.typicalSize.lowerBound)-\(grade.typicalSize.upperBound) children; this one is planned for \(capacity)"]
  }
}

public enum StaffPost: String, CaseIterable, Hashable, Sendable, Codable {
  case teacher, childcareWorker = "childcare_worker", healthStaff = "health_staff", principal, other
}

/// A care-and-education staff member (保教人员).
public struct StaffMember: Hashable, Sendable, Codable {
  public var name: String
  public var idDocumentType: IDDocumentType
  public var idDocumentNumber: String
  public var gender: Gender
  public var birthDate: CalendarDate
  public var post: StaffPost
  public var qualification: String
  public var certificate: String
  public var hireDate: CalendarDate
  public var active: Bool

  public init(
    name: String, idDocumentType: IDDocumentType, idDocumentNumber: String, gender: Gender, birthDate: CalendarDate,
    post: StaffPost, qualification: String, certificate: String, hireDate: CalendarDate, active: Bool
  ) {
    self.name = name
    self.idDocumentType = idDocumentType
    self.idDocumentNumber = idDocumentNumber
    self.gender = gender
    self.birthDate = birthDate
    self.post = post
    self.qualification = qualification
    self.certificate = certificate
    self.hireDate = hireDate
    self.active = active
  }

  public func violations() -> [DomainError] {
    var errors: [DomainError] = []
    if name.trimmingWhitespace.isEmpty || name.count > 50 {
      errors.append(DomainError(field: "staff.name", rule: "required", "is required, at most 50 characters"))
    }
    if !birthDate.isValid { errors.append(DomainError(field: "staff.birth_date", rule: "date", "is not a valid date")) }
    if !hireDate.isValid { errors.append(DomainError(field: "staff.hire_date", rule: "date", "is not a valid date")) }
    if birthDate.isValid && hireDate.isValid && hireDate.dayNumber - birthDate.dayNumber < 16 * 365 {
      errors.append(DomainError(field: "staff.hire_date", rule: "age", "must be at least 16 years after the birth date"))
    }
    do {
      try IDDocuments.validate(
        type: idDocumentType, number: idDocumentNumber, birthDate: birthDate.isValid ? birthDate : nil, gender: gender,
        field: "staff.id_document_number")
    } catch { errors.append(error) }
    if qualification.count > 50 { errors.append(DomainError(field: "staff.qualification", rule: "max_length", "at most 50 characters")) }
    if certificate.count > 50 { errors.append(DomainError(field: "staff.certificate", rule: "max_length", "at most 50 characters")) }
    return errors
  }
}

/// One year's finance information (Art. 13), in fen.
public struct FinanceYear: Hashable, Sendable, Codable {
  public struct Line: Hashable, Sendable, Codable {
    public var category: String
    public var fen: Int64
    public var note: String
    public init(category: String, fen: Int64, note: String) {
      self.category = category
      self.fen = fen
      self.note = note
    }
  }

  public var year: Int
  public var income: [Line]
  public var expenditure: [Line]
  public var subsidies: [Line]

  public static let incomeSources: Set<String> = ["tuition", "government_funding", "sponsor", "donation", "other"]
  public static let expenditureCategories: Set<String> = ["salaries", "operations", "equipment", "maintenance", "food", "other"]

  public init(year: Int, income: [Line], expenditure: [Line], subsidies: [Line]) {
    self.year = year
    self.income = income
    self.expenditure = expenditure
    self.subsidies = subsidies
  }

  public func violations() -> [DomainError] {
    var errors: [DomainError] = []
    if !(2000...2100).contains(year) { errors.append(DomainError(field: "finance.year", rule: "range", "must be 2000 to 2100")) }
    func check(_ lines: [Line], _ field: String, allowed: Set<String>?) {
      var seen: Set<String> = []
      for (i, line) in lines.enumerated() {
        if let allowed, !allowed.contains(line.category) {
          errors.append(DomainError(field: "finance.\(field)[\(i)].category", rule: "enum", "must be one of \(allowed.sorted().joined(separator: ", "))"))
        } else if line.category.trimmingWhitespace.isEmpty || line.category.count > 50 {
          errors.append(DomainError(field: "finance.\(field)[\(i)].category", rule: "required", "is required, at most 50 characters"))
        }
        if !seen.insert(line.category).inserted {
          errors.append(DomainError(field: "finance.\(field)[\(i)].category", rule: "unique", "\(line.category) appears twice"))
        }
        if !(0...1_000_000_000_000).contains(line.fen) {
          errors.append(DomainError(field: "finance.\(field)[\(i)].fen", rule: "range", "must be 0 to 10,000,000,000 yuan"))
        }
      }
    }
    check(income, "income", allowed: Self.incomeSources)
    check(expenditure, "expenditure", allowed: Self.expenditureCategories)
    check(subsidies, "subsidies", allowed: nil)
    return errors
  }
}

/// The leadership group (Art. 19): the principal leads; administrator, class leaders, finance and
/// HR are members.
public struct LeadershipGroup: Hashable, Sendable, Codable {
  public struct Member: Hashable, Sendable, Codable {
    public var name: String
    public var role: String
    public var staffId: String?
    public init(name: String, role: String, staffId: String?) {
      self.name = name
      self.role = role
      self.staffId = staffId
    }
  }

  public static let roles: Set<String> = ["leader", "administrator", "class_leader", "finance", "hr"]
  public var members: [Member]
  public var changedOn: CalendarDate

  public init(members: [Member], changedOn: CalendarDate) {
    self.members = members
    self.changedOn = changedOn
  }

  public func violations(today: CalendarDate) -> [DomainError] {
    var errors: [DomainError] = []
    if !(2...30).contains(members.count) {
      errors.append(DomainError(field: "members", rule: "count", "a leadership group has 2 to 30 members"))
    }
    for (i, member) in members.enumerated() {
      if member.name.trimmingWhitespace.isEmpty || member.name.count > 50 {
        errors.append(DomainError(field: "members[\(i)].name", rule: "required", "is required, at most 50 characters"))
      }
      if !Self.roles.contains(member.role) {
        errors.append(DomainError(field: "members[\(i)].role", rule: "enum", "must be one of administrator, class_leader, finance, hr, leader"))
      }
    }
    if members.filter({ $0.role == "leader" }).count != 1 {
      errors.append(DomainError(field: "members", rule: "leader", "exactly one member leads the group (the principal)"))
    }
    if !members.contains(where: { $0.role == "administrator" }) {
      errors.append(DomainError(field: "members", rule: "administrator", "the system administrator belongs to the group"))
    }
    if !changedOn.isValid {
      errors.append(DomainError(field: "changed_on", rule: "date", "is not a valid date"))
    } else if changedOn > today {
      errors.append(DomainError(field: "changed_on", rule: "future", "cannot be after today"))
    }
    return errors
  }
}
