-- Medical records. Every personal and clinical column holds a stored form made by the field
-- encryption (sealed by default); the clear columns are ids, timestamps that order the record,
-- statuses and sizes. The owner of every row is the patient's account id (`patient_id`, or
-- `user_id` in `patients`), which drives the per-row keys.

CREATE TABLE patients (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    national_id TEXT NOT NULL,
    national_id_index TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    gender TEXT NOT NULL,
    blood_type TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT NOT NULL,
    address TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    height_cm TEXT NOT NULL,
    weight_kg TEXT NOT NULL,
    allergies TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX patients_national_id_index ON patients (national_id_index);

-- Which doctor treats which patient: set by an admin, or by the doctor who registered them.
CREATE TABLE care_assignments (
    doctor_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    assigned_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (doctor_id, patient_id)
);
CREATE INDEX care_assignments_patient_id ON care_assignments (patient_id);

-- A doctor opening a record outside their care, with a written reason, for a limited time.
CREATE TABLE emergency_grants (
    id TEXT PRIMARY KEY NOT NULL,
    doctor_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reason TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX emergency_grants_doctor_patient ON emergency_grants (doctor_id, patient_id);

CREATE TABLE consultations (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    doctor_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    occurred_at BIGINT NOT NULL,
    department TEXT NOT NULL,
    block TEXT NOT NULL,
    unit TEXT NOT NULL,
    diagnosis TEXT NOT NULL,
    notes TEXT NOT NULL,
    prescription TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX consultations_patient_id ON consultations (patient_id, occurred_at);

-- The file itself lives encrypted under storage/ with a random key of its own, kept sealed in
-- `file_key`; `sha256` is the digest of the plain content, checked on every download.
CREATE TABLE medical_files (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    uploaded_by TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    taken_on TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    file_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX medical_files_patient_id ON medical_files (patient_id);

CREATE TABLE vaccinations (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    recorded_by TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    vaccine TEXT NOT NULL,
    dose_number TEXT NOT NULL,
    given_on TEXT NOT NULL,
    lot TEXT NOT NULL,
    given_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX vaccinations_patient_id ON vaccinations (patient_id);

CREATE TABLE appointments (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    doctor_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    starts_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX appointments_patient_id ON appointments (patient_id, starts_at);
CREATE INDEX appointments_doctor_id ON appointments (doctor_id, starts_at);

-- How a profile field is shown to a level: 'full', 'masked' or 'hidden'. A missing row means
-- the built-in default.
CREATE TABLE field_visibility (
    field TEXT NOT NULL,
    level TEXT NOT NULL,
    mode TEXT NOT NULL,
    PRIMARY KEY (field, level)
);

-- A patient's access log reads the audit events about their record.
CREATE INDEX audit_events_target ON audit_events (target, at);
