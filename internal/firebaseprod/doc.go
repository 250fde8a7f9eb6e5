// Package firebaseprod is a stand-in for Firebase Auth with production's
// semantics, for tests. It serves, over plain HTTP on a loopback port, the
// Identity Toolkit endpoints the Firebase Admin Go SDK calls when
// FIREBASE_AUTH_EMULATOR_HOST points at it.
//
// # Why it exists
//
// No runnable part of Firebase has production's semantics, and the Auth
// emulator, the one we can run, refuses what production accepts. Production's
// importUsers "does not check for uid, email, phoneNumber and other unique
// identifier duplication": importing a uid that exists replaces that
// account whole, and importing an email or a provider identity another
// account holds makes an additional account with the same value. The
// emulator instead fails the user with a duplicate email or provider
// identity or an existing uid, and the whole call with the same uid twice,
// so the guarantees signupsync needs in production
// (never two accounts for one person, never a silent replacement) cannot be
// tested against it. This package accepts what production accepts, counts
// the consequences ([Stats]) and refuses what production refuses (a
// duplicate email or uid on create, an email or identity held elsewhere on
// update).
//
// # What it serves
//
// Per project (the id in the path; projects are isolated and exist on first
// use), under /identitytoolkit.googleapis.com/v1/projects/{project}/:
//
//   - accounts (CreateUser): DUPLICATE_LOCAL_ID, EMAIL_EXISTS,
//     PHONE_NUMBER_EXISTS;
//   - accounts:lookup (GetUser, GetUserByEmail, GetUsers, ...): every
//     account matching each identifier, oldest first, and no users field
//     when none match (the SDK turns that into USER_NOT_FOUND);
//   - accounts:batchCreate (ImportUsers): at most [MaxImportUsers] users;
//     replaces existing uids, adds duplicates, reports only invalid data
//     per user;
//   - accounts:update (UpdateUser, SetCustomUserClaims): USER_NOT_FOUND,
//     EMAIL_EXISTS, PHONE_NUMBER_EXISTS, FEDERATED_USER_ID_ALREADY_LINKED;
//   - accounts:delete and accounts:batchDelete (at most [MaxDeleteUIDs]);
//   - accounts:batchGet (the Users iterator), uid order, opaque page tokens.
//
// Everything else answers 404 with Google's error body. Errors use Google's
// JSON shape, {"error":{"code":400,"message":"EMAIL_EXISTS","errors":[...]}},
// with the message strings the SDK maps to its error checks
// (auth.IsEmailAlreadyExists, auth.IsUserNotFound, ...). Where production's
// exact wording is not documented (per-user import errors, limits, codes
// the SDK does not map), the message is this package's best guess; tests
// should branch on the SDK's checks and on indexes, not on that wording.
//
// Stand-in choices that production does not promise: emails are stored
// lower-cased (as the emulator does); look-ups list accounts oldest first;
// passwords set by CreateUser or UpdateUser are hashed with salted SHA-256,
// not Firebase's scrypt; no credentials are checked.
//
// # Test hooks
//
// [Server.Stats] counts accounts, replacements, duplicate emails and
// identities and calls per endpoint (also served as JSON at
// /firebaseprod/v1/projects/{project}/stats, read by [FetchStats]);
// [Server.Accounts] snapshots a project; [Server.Insert] adds an account
// without any uniqueness check. [Server.SetUnavailable] makes every call
// answer 503 UNAVAILABLE; [Server.Freeze] holds every call until
// [Server.Thaw]. A Server is safe for concurrent use.
package firebaseprod
