//! Projects, their members and invitations: who may see, edit, archive and manage them.
//!
//! A project is visible to its members only; anyone else is told it does not exist. Viewers
//! read; maintainers also edit it and attach workspaces; only the owner manages members and
//! archives it. Nobody becomes a member without accepting an invitation, and inviting answers
//! alike whether or not the address has an account.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
    users::normalize_email,
};
use crate::{
    state::AppState,
    store::{Invitation, Member, NewProject, Project, ProjectPatch, ProjectStatus, Role},
};

/// Longest project name.
const MAX_NAME: usize = 200;
/// Longest description.
const MAX_DESCRIPTION: usize = 10_000;
/// Most tech-stack entries.
const MAX_TECH: usize = 32;
/// How long an invitation can be accepted.
pub const INVITATION_DAYS: i64 = 7;
/// Most pending invitations per project.
pub const MAX_PENDING: usize = 100;

/// A project's fields as given when creating or editing it (`None` leaves one as it is).
#[derive(Debug, Clone, Default)]
pub struct ProjectInput {
    /// Display name (required when creating).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Where its code lives (empty clears it).
    pub repository_url: Option<String>,
    /// Languages and frameworks.
    pub tech_stack: Option<Vec<String>>,
}

impl ProjectInput {
    fn check(&self, creating: bool) -> DomainResult<()> {
        let invalid = |m: String| Err(DomainError::Invalid(m));
        match &self.name {
            Some(n) if n.trim().is_empty() || n.len() > MAX_NAME => {
                return invalid(format!("name must be 1 to {MAX_NAME} characters"));
            }
            None if creating => return invalid("name is required".into()),
            _ => {}
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION)
        {
            return invalid(format!(
                "description must be at most {MAX_DESCRIPTION} bytes"
            ));
        }
        if let Some(url) = &self.repository_url
            && (url.len() > 2048 || url.chars().any(char::is_whitespace))
        {
            return invalid("repository_url must be a URL of at most 2048 bytes".into());
        }
        if let Some(tech) = &self.tech_stack
            && (tech.len() > MAX_TECH || tech.iter().any(|t| t.is_empty() || t.len() > 64))
        {
            return invalid(format!(
                "tech_stack is at most {MAX_TECH} names of 1 to 64 bytes"
            ));
        }
        Ok(())
    }
}

/// The projects `user` is a member of, newest first.
pub async fn list(app: &AppState, user: Uuid) -> DomainResult<Vec<Project>> {
    Ok(app.store.list_projects(user).await?)
}

/// The project if `user` is a member.
pub async fn visible(app: &AppState, user: Uuid, id: Uuid) -> DomainResult<Project> {
    app.store
        .get_project(user, id)
        .await?
        .ok_or(DomainError::NotFound("project"))
}

/// Refuses unless the caller's role in `project` is one of `allowed`.
fn require(project: &Project, allowed: &[Role], what: &str) -> DomainResult<()> {
    if allowed.contains(&project.role) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "a {} of this project cannot {what}",
            project.role.as_str()
        )))
    }
}

/// The project if the caller may `what` in it (one of `allowed` roles).
async fn managed(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    allowed: &[Role],
    what: &str,
) -> DomainResult<Project> {
    let project = visible(app, caller.user, id).await?;
    require(&project, allowed, what)?;
    Ok(project)
}

fn audit(caller: Caller, action: &str, subject: Uuid) {
    audit::record(Record {
        caller,
        action,
        subject,
    });
}

/// Creates a project owned by the caller.
pub async fn create(app: &AppState, caller: Caller, input: ProjectInput) -> DomainResult<Project> {
    input.check(true)?;
    let new = NewProject {
        name: input.name.unwrap_or_default().trim().to_owned(),
        description: input.description.unwrap_or_default(),
        repository_url: input.repository_url.filter(|u| !u.is_empty()),
        tech_stack: input.tech_stack.unwrap_or_default(),
    };
    let project = app
        .store
        .create_project(caller.user, &new, Utc::now())
        .await?;
    audit(caller, "project.create", project.id);
    Ok(project)
}

/// Edits a project (owner or maintainer).
pub async fn update(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    input: ProjectInput,
) -> DomainResult<Project> {
    let project = managed(app, caller, id, &[Role::Owner, Role::Maintainer], "edit it").await?;
    input.check(false)?;
    let patch = ProjectPatch {
        name: input.name.map(|n| n.trim().to_owned()),
        description: input.description,
        repository_url: input
            .repository_url
            .map(|u| Some(u).filter(|u| !u.is_empty())),
        tech_stack: input.tech_stack,
        status: None,
    };
    let updated = app
        .store
        .update_project(caller.user, project.id, &patch, Utc::now())
        .await?
        .ok_or(DomainError::NotFound("project"))?;
    audit(caller, "project.update", project.id);
    Ok(updated)
}

/// Archives a project (owner only): nothing more runs in it, and its members' open streams
/// check their access again.
pub async fn archive(app: &AppState, caller: Caller, id: Uuid) -> DomainResult<Project> {
    let project = managed(app, caller, id, &[Role::Owner], "archive it").await?;
    let patch = ProjectPatch {
        status: Some(ProjectStatus::Archived),
        ..Default::default()
    };
    let updated = app
        .store
        .update_project(caller.user, project.id, &patch, Utc::now())
        .await?
        .ok_or(DomainError::NotFound("project"))?;
    let members: Vec<Uuid> = app
        .store
        .project_members(&project)
        .await?
        .iter()
        .map(|m| m.user_id)
        .collect();
    crate::access::members_changed(app, project.id, &members);
    audit(caller, "project.archive", project.id);
    Ok(updated)
}

/// Attaches or detaches one of the caller's workspaces (owner or maintainer).
pub async fn set_workspace(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    workspace: Uuid,
    attach: bool,
) -> DomainResult<Project> {
    let project = managed(
        app,
        caller,
        id,
        &[Role::Owner, Role::Maintainer],
        "change its workspaces",
    )
    .await?;
    if !app
        .store
        .set_project_workspace(caller.user, project.id, workspace, attach)
        .await?
    {
        return Err(DomainError::NotFound("workspace"));
    }
    audit(
        caller,
        if attach {
            "project.attach_workspace"
        } else {
            "project.detach_workspace"
        },
        project.id,
    );
    visible(app, caller.user, project.id).await
}

/// The project's members (any member may see them).
pub async fn members(app: &AppState, user: Uuid, id: Uuid) -> DomainResult<Vec<Member>> {
    let project = visible(app, user, id).await?;
    Ok(app.store.project_members(&project).await?)
}

/// A role a member can be given: `maintainer` or `viewer`.
pub fn member_role(role: &str) -> DomainResult<Role> {
    match Role::parse(role) {
        Some(r @ (Role::Maintainer | Role::Viewer)) => Ok(r),
        _ => Err(DomainError::Invalid(
            "role must be \"maintainer\" or \"viewer\"".into(),
        )),
    }
}

/// Changes an existing member's role (owner only). Only the project's own members are looked
/// at, so the answer never tells whether an e-mail has an account.
pub async fn set_member_role(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    email: &str,
    role: &str,
) -> DomainResult<Vec<Member>> {
    let project = managed(app, caller, id, &[Role::Owner], "manage its members").await?;
    let role = member_role(role)?;
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    let members = app.store.project_members(&project).await?;
    let member = members.iter().find(|m| m.email == email).ok_or_else(|| {
        DomainError::Absent {
            code: "not_a_member",
            message: "no member of this project has that e-mail; invite them with POST /api/v1/projects/{id}/invitations".into(),
        }
    })?;
    if member.role == Role::Owner {
        return Err(DomainError::conflict(
            "owner",
            "the owner's role cannot change",
        ));
    }
    app.store
        .set_project_member(project.id, member.user_id, role, Utc::now())
        .await?;
    app.access.members_changed(project.id);
    audit(caller, "project.set_member_role", member.user_id);
    Ok(app.store.project_members(&project).await?)
}

/// Removes a member (owner only); their open streams stop showing the project at once.
pub async fn remove_member(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    member: Uuid,
) -> DomainResult<()> {
    let project = managed(app, caller, id, &[Role::Owner], "manage its members").await?;
    // Before and after the removal: an audience read while it commits is read again.
    app.access.members_changed(project.id);
    if !app.store.remove_project_member(project.id, member).await? {
        return Err(DomainError::NotFound("member"));
    }
    crate::access::members_changed(app, project.id, &[member]);
    audit(caller, "project.remove_member", member);
    Ok(())
}

/// Invites an e-mail address (owner only). The answer is the same whether or not it has an
/// account.
pub async fn invite(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    email: &str,
    role: &str,
) -> DomainResult<Invitation> {
    let project = managed(app, caller, id, &[Role::Owner], "manage its members").await?;
    let role = member_role(role)?;
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    if app
        .store
        .project_members(&project)
        .await?
        .iter()
        .any(|m| m.email == email)
    {
        return Err(DomainError::conflict(
            "already_member",
            "that address is already a member; change its role with PUT …/members",
        ));
    }
    let now = Utc::now();
    let pending = app.store.project_invitations(project.id, now).await?;
    if pending.len() >= MAX_PENDING && !pending.iter().any(|i| i.email == email) {
        return Err(DomainError::conflict(
            "too_many_invitations",
            format!("at most {MAX_PENDING} pending invitations per project"),
        ));
    }
    let invitation = app
        .store
        .invite(
            project.id,
            &email,
            role,
            caller.user,
            now,
            now + Duration::days(INVITATION_DAYS),
        )
        .await?;
    audit(caller, "project.invite", invitation.id);
    Ok(invitation)
}

/// The project's pending invitations (owner only).
pub async fn invitations(
    app: &AppState,
    caller: Caller,
    id: Uuid,
) -> DomainResult<Vec<Invitation>> {
    let project = managed(app, caller, id, &[Role::Owner], "manage its members").await?;
    Ok(app
        .store
        .project_invitations(project.id, Utc::now())
        .await?)
}

/// Withdraws one of the project's invitations (owner only).
pub async fn withdraw(
    app: &AppState,
    caller: Caller,
    id: Uuid,
    invitation: Uuid,
) -> DomainResult<()> {
    let project = managed(app, caller, id, &[Role::Owner], "manage its members").await?;
    if !app
        .store
        .withdraw_invitation(project.id, invitation)
        .await?
    {
        return Err(DomainError::NotFound("invitation"));
    }
    audit(caller, "project.withdraw_invitation", invitation);
    Ok(())
}

/// The caller's e-mail address.
async fn email_of(app: &AppState, user: Uuid) -> DomainResult<String> {
    Ok(app
        .store
        .user_by_id(user)
        .await?
        .ok_or(DomainError::NotFound("user"))?
        .email)
}

/// The invitations addressed to the caller.
pub async fn my_invitations(app: &AppState, user: Uuid) -> DomainResult<Vec<Invitation>> {
    let email = email_of(app, user).await?;
    Ok(app.store.invitations_for(&email, Utc::now()).await?)
}

/// Accepts an invitation addressed to the caller: they join the project.
pub async fn accept(app: &AppState, caller: Caller, invitation: Uuid) -> DomainResult<Project> {
    let email = email_of(app, caller.user).await?;
    let project = app
        .store
        .accept_invitation(caller.user, &email, invitation, Utc::now())
        .await?
        .ok_or(DomainError::NotFound("invitation"))?;
    app.access.members_changed(project);
    audit(caller, "project.accept_invitation", invitation);
    visible(app, caller.user, project).await
}

/// Declines an invitation addressed to the caller.
pub async fn decline(app: &AppState, caller: Caller, invitation: Uuid) -> DomainResult<()> {
    let email = email_of(app, caller.user).await?;
    if !app.store.decline_invitation(&email, invitation).await? {
        return Err(DomainError::NotFound("invitation"));
    }
    audit(caller, "project.decline_invitation", invitation);
    Ok(())
}
