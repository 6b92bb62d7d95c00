//! Ids that a function could be handed in the wrong order where it takes two or three: each is a
//! type of its own, so passing the patient where the doctor goes, or the owner where the row
//! goes, does not compile. They borrow the text id the rows and accounts hold.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name<'a>(pub &'a str);

        impl<'a> $name<'a> {
            pub fn as_str(self) -> &'a str {
                self.0
            }
        }

        impl std::fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
    };
}

id_type!(
    /// Any account: who did something.
    UserId
);
id_type!(
    /// A patient's account, which is also the id of their record.
    PatientId
);
id_type!(
    /// A doctor's account.
    DoctorId
);
id_type!(
    /// One row of a table (a consultation, a file, a dose…).
    RowId
);
id_type!(
    /// The account a row belongs to: its encrypted values are sealed under keys of that
    /// account's family (a patient for the record's rows, the user for their own account).
    OwnerId
);

impl<'a> From<PatientId<'a>> for OwnerId<'a> {
    fn from(patient: PatientId<'a>) -> Self {
        OwnerId(patient.0)
    }
}

impl<'a> From<UserId<'a>> for OwnerId<'a> {
    fn from(user: UserId<'a>) -> Self {
        OwnerId(user.0)
    }
}
