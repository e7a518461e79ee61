//! Credentials and the root directory: user and group lookup before the fork; `chroot(2)`,
//! `setgroups(2)`, `setgid(2)`, `setuid(2)` in the daemon.
//!
//! Lookups (`getpwnam_r(3)`, `getgrnam_r(3)`, `getgrouplist(3)`) read NSS files and may
//! allocate, so they happen in the original process. The daemon then drops privileges in the
//! only safe order: supplementary groups, group, user; and checks that `setuid(0)` now fails,
//! so a half-dropped daemon never runs, unless it asked to be one (`effective_only`: a
//! supervisor out of its command's reach, which finishes the drop in the command).
use std::ffi::{CStr, CString};

use nix::unistd::{Gid, Group, Uid, User};

use crate::error::{Error, Step};

/// Who the daemon becomes, resolved before the fork.
#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    /// `setuid(2)` to this.
    pub uid: Option<libc::uid_t>,
    /// `setgid(2)` to this.
    pub gid: Option<libc::gid_t>,
    /// `setgroups(2)` to these (set when running as root and dropping to another identity).
    pub groups: Option<Vec<Gid>>,
    /// Change only the effective user id (`seteuid(2)`), keeping the real and saved ones.
    pub effective_only: bool,
}

/// A user as named in the options: by name (resolved with `getpwnam_r(3)`) or by id.
#[derive(Clone, Debug)]
pub enum UserSpec {
    /// A login name.
    Name(String),
    /// A numeric user id.
    Id(u32),
}

/// A group as named in the options: by name (resolved with `getgrnam_r(3)`) or by id.
#[derive(Clone, Debug)]
pub enum GroupSpec {
    /// A group name.
    Name(String),
    /// A numeric group id.
    Id(u32),
}

/// Resolves user, group and supplementary groups in the original process.
///
/// The user's primary group applies when no group is given. With `initgroups`, the user's
/// supplementary groups come from `getgrouplist(3)`; otherwise, when root drops to another
/// identity, the supplementary groups are cleared down to the daemon's group.
pub(crate) fn resolve(
    user: Option<&UserSpec>,
    group: Option<&GroupSpec>,
    initgroups: bool,
) -> Result<Credentials, Error> {
    let account = match user {
        Some(UserSpec::Name(name)) => Some(lookup_user_by_name(name)?),
        Some(UserSpec::Id(id)) => lookup_user_by_id(*id)?,
        None => None,
    };
    let uid = match (user, &account) {
        (_, Some(account)) => Some(account.uid.as_raw()),
        (Some(UserSpec::Id(id)), None) => Some(*id),
        _ => None,
    };
    let gid = match group {
        Some(GroupSpec::Name(name)) => Some(lookup_group(name)?),
        Some(GroupSpec::Id(id)) => Some(*id),
        None => account.as_ref().map(|a| a.gid.as_raw()),
    };
    if let (Some(UserSpec::Id(id)), None, None) = (user, &account, gid) {
        // A uid with no passwd entry has no primary group: keeping ours (root's) is wrong.
        return Err(Error::UnknownUser { kind: "uid (give a group too)", name: id.to_string() });
    }
    let changes_identity = uid.is_some() || gid.is_some();
    let groups = if !changes_identity || !Uid::effective().is_root() {
        None
    } else if let (true, Some(account), Some(gid)) = (initgroups, &account, gid) {
        Some(supplementary_groups(&account.name, gid)?)
    } else {
        Some(gid.into_iter().map(Gid::from_raw).collect())
    };
    Ok(Credentials { uid, gid, groups, effective_only: false })
}

fn lookup_user_by_name(name: &str) -> Result<User, Error> {
    match User::from_name(name) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(Error::UnknownUser { kind: "user", name: name.to_owned() }),
        Err(errno) => Err(Error::os(Step::LookupUser, format!("user {name}"), errno.into())),
    }
}

fn lookup_user_by_id(id: u32) -> Result<Option<User>, Error> {
    User::from_uid(Uid::from_raw(id))
        .map_err(|errno| Error::os(Step::LookupUser, format!("uid {id}"), errno.into()))
}

fn lookup_group(name: &str) -> Result<libc::gid_t, Error> {
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(Error::UnknownUser { kind: "group", name: name.to_owned() }),
        Err(errno) => Err(Error::os(Step::LookupUser, format!("group {name}"), errno.into())),
    }
}

fn supplementary_groups(user: &str, gid: libc::gid_t) -> Result<Vec<Gid>, Error> {
    let failed = |e: std::io::Error| Error::os(Step::LookupUser, format!("groups of {user}"), e);
    let name = CString::new(user).map_err(|e| failed(std::io::Error::other(e)))?;
    nix::unistd::getgrouplist(&name, Gid::from_raw(gid)).map_err(|errno| failed(errno.into()))
}

/// `chroot(2)` to `dir`, then `chdir(2)` to its new `/`. Async-signal-safe.
pub(crate) fn change_root(dir: &CStr) -> Result<(), i32> {
    nix::unistd::chroot(dir).map_err(|e| e as i32)?;
    nix::unistd::chdir(c"/").map_err(|e| e as i32)
}

/// `setgroups(2)`, `setgid(2)`, `setuid(2)`, in that order, then checks that root cannot be
/// regained (`setuid(0)` must fail); with `effective_only`, `seteuid(2)` instead of `setuid(2)`
/// and no check (root can be regained: that is the point). Async-signal-safe; the failed step
/// and errno on failure.
pub(crate) fn drop_privileges(creds: &Credentials) -> Result<(), (Step, i32)> {
    if let Some(groups) = &creds.groups {
        nix::unistd::setgroups(groups).map_err(|e| (Step::SetGroups, e as i32))?;
    }
    if let Some(gid) = creds.gid {
        nix::unistd::setgid(Gid::from_raw(gid)).map_err(|e| (Step::SetGid, e as i32))?;
    }
    if let (Some(uid), true) = (creds.uid, creds.effective_only) {
        return nix::unistd::seteuid(Uid::from_raw(uid)).map_err(|e| (Step::SetUid, e as i32));
    }
    if let Some(uid) = creds.uid {
        nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| (Step::SetUid, e as i32))?;
        if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err((Step::SetUid, libc::EPERM));
        }
    }
    Ok(())
}
