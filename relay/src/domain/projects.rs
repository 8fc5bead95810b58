//! Projects, their members and invitations: who may see, edit, archive and manage them.
//!
//! A project is visible to its members only; anyone else is told it does not exist. Viewers
//! read; maintainers also edit it and attach workspaces; only the owner manages members and
//! archives it. Nobody becomes a member without accepting an invitation, and inviting answers
//! alike whether or not the address has an account.

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use fulcrum_protocol::TaskState;
use serde::Serialize;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult, Limit,
    accounts::normalize_email,
    audit::{self, Record},
    workspaces::Workspaces,
};
use crate::{
    access::AccessChanges,
    store::{
        DynStore, Health, Invitation, Member, NewProject, Project, ProjectPatch, ProjectStatus,
        Role, Scope, Task, TaskFilter,
    },
    tasks::TaskFeed,
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

fn audit(caller: Caller, action: &str, subject: Uuid) {
    audit::record(Record {
        caller,
        action,
        subject,
    });
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

/// Projects, their members and invitations, with what managing them uses.
pub struct Projects {
    store: DynStore,
    access: Arc<AccessChanges>,
    feed: Arc<TaskFeed>,
    workspaces: Workspaces,
}

impl Projects {
    /// Projects in `store`; membership changes go out on `access`; reports read tasks as
    /// `feed` shows them and workspaces as `workspaces` does.
    pub fn new(
        store: DynStore,
        access: Arc<AccessChanges>,
        feed: Arc<TaskFeed>,
        workspaces: Workspaces,
    ) -> Self {
        Self {
            store,
            access,
            feed,
            workspaces,
        }
    }

    /// The projects the caller is a member of (and its token reaches), newest first.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<Project>> {
        caller.need(Scope::Read)?;
        self.reachable(caller).await
    }

    /// The projects the caller is a member of and its token reaches, whatever its scopes (for
    /// doors that write without reading, such as ingestion).
    pub async fn reachable(&self, caller: Caller) -> DomainResult<Vec<Project>> {
        let mut all = self.store.list_projects(caller.user).await?;
        all.retain(|p| caller.reaches_project(p.id, &p.workspace_ids));
        Ok(all)
    }

    /// The project if the caller is a member and may read it.
    pub async fn visible(&self, caller: Caller, id: Uuid) -> DomainResult<Project> {
        caller.need(Scope::Read)?;
        self.reached(caller, id).await
    }

    /// The project if the caller is a member and its token reaches it (no scope checked).
    async fn reached(&self, caller: Caller, id: Uuid) -> DomainResult<Project> {
        self.store
            .get_project(caller.user, id)
            .await?
            .filter(|p| caller.reaches_project(p.id, &p.workspace_ids))
            .ok_or(DomainError::NotFound("project"))
    }

    /// The project if the caller may `what` in it (one of `allowed` roles).
    pub async fn managed(
        &self,
        caller: Caller,
        id: Uuid,
        allowed: &[Role],
        what: &str,
    ) -> DomainResult<Project> {
        caller.need(Scope::Write)?;
        if let Limit::Workspace(_) = caller.grant.limit {
            return Err(DomainError::Denied {
                code: "token_limited",
                message: format!("this token is limited to one workspace, so it cannot {what}"),
            });
        }
        let project = self.reached(caller, id).await?;
        require(&project, allowed, what)?;
        Ok(project)
    }

    /// Creates a project owned by the caller.
    pub async fn create(&self, caller: Caller, input: ProjectInput) -> DomainResult<Project> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("create projects")?;
        input.check(true)?;
        let new = NewProject {
            name: input.name.unwrap_or_default().trim().to_owned(),
            description: input.description.unwrap_or_default(),
            repository_url: input.repository_url.filter(|u| !u.is_empty()),
            tech_stack: input.tech_stack.unwrap_or_default(),
        };
        let project = self
            .store
            .create_project(caller.user, &new, Utc::now())
            .await?;
        audit(caller, "project.create", project.id);
        Ok(project)
    }

    /// Edits a project (owner or maintainer).
    pub async fn update(
        &self,
        caller: Caller,
        id: Uuid,
        input: ProjectInput,
    ) -> DomainResult<Project> {
        let project = self
            .managed(caller, id, &[Role::Owner, Role::Maintainer], "edit it")
            .await?;
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
        let updated = self
            .store
            .update_project(caller.user, project.id, &patch, Utc::now())
            .await?
            .ok_or(DomainError::NotFound("project"))?;
        audit(caller, "project.update", project.id);
        Ok(updated)
    }

    /// Archives a project (owner only): nothing more runs in it, and its members' open streams
    /// check their access again.
    pub async fn archive(&self, caller: Caller, id: Uuid) -> DomainResult<Project> {
        let project = self
            .managed(caller, id, &[Role::Owner], "archive it")
            .await?;
        let patch = ProjectPatch {
            status: Some(ProjectStatus::Archived),
            ..Default::default()
        };
        let updated = self
            .store
            .update_project(caller.user, project.id, &patch, Utc::now())
            .await?
            .ok_or(DomainError::NotFound("project"))?;
        let members: Vec<Uuid> = self
            .store
            .project_members(&project)
            .await?
            .iter()
            .map(|m| m.user_id)
            .collect();
        self.access.lost_access(project.id, &members);
        audit(caller, "project.archive", project.id);
        Ok(updated)
    }

    /// Attaches or detaches one of the caller's workspaces (owner or maintainer).
    pub async fn set_workspace(
        &self,
        caller: Caller,
        id: Uuid,
        workspace: Uuid,
        attach: bool,
    ) -> DomainResult<Project> {
        // Attaching widens what a limited token reaches: only an unlimited credential may.
        if attach {
            caller.need_unlimited("attach workspaces")?;
        }
        let project = self
            .managed(
                caller,
                id,
                &[Role::Owner, Role::Maintainer],
                "change its workspaces",
            )
            .await?;
        if !self
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
        self.reached(caller, project.id).await
    }

    /// The project's members (any member may see them).
    pub async fn members(&self, caller: Caller, id: Uuid) -> DomainResult<Vec<Member>> {
        let project = self.visible(caller, id).await?;
        Ok(self.store.project_members(&project).await?)
    }

    /// Changes an existing member's role (owner only). Only the project's own members are looked
    /// at, so the answer never tells whether an e-mail has an account.
    pub async fn set_member_role(
        &self,
        caller: Caller,
        id: Uuid,
        email: &str,
        role: &str,
    ) -> DomainResult<Vec<Member>> {
        let project = self
            .managed(caller, id, &[Role::Owner], "manage its members")
            .await?;
        let role = member_role(role)?;
        let email = normalize_email(email).map_err(DomainError::Invalid)?;
        let members = self.store.project_members(&project).await?;
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
        self.store
            .set_project_member(project.id, member.user_id, role, Utc::now())
            .await?;
        self.access.members_changed(project.id);
        audit(caller, "project.set_member_role", member.user_id);
        Ok(self.store.project_members(&project).await?)
    }

    /// Removes a member (owner only); their open streams stop showing the project at once.
    pub async fn remove_member(&self, caller: Caller, id: Uuid, member: Uuid) -> DomainResult<()> {
        let project = self
            .managed(caller, id, &[Role::Owner], "manage its members")
            .await?;
        // Before and after the removal: an audience read while it commits is read again.
        self.access.members_changed(project.id);
        if !self.store.remove_project_member(project.id, member).await? {
            return Err(DomainError::NotFound("member"));
        }
        self.access.lost_access(project.id, &[member]);
        audit(caller, "project.remove_member", member);
        Ok(())
    }

    /// Invites an e-mail address (owner only). The answer is the same whether or not it has an
    /// account.
    pub async fn invite(
        &self,
        caller: Caller,
        id: Uuid,
        email: &str,
        role: &str,
    ) -> DomainResult<Invitation> {
        let project = self
            .managed(caller, id, &[Role::Owner], "manage its members")
            .await?;
        let role = member_role(role)?;
        let email = normalize_email(email).map_err(DomainError::Invalid)?;
        if self
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
        let pending = self.store.project_invitations(project.id, now).await?;
        if pending.len() >= MAX_PENDING && !pending.iter().any(|i| i.email == email) {
            return Err(DomainError::conflict(
                "too_many_invitations",
                format!("at most {MAX_PENDING} pending invitations per project"),
            ));
        }
        let invitation = self
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
    pub async fn invitations(&self, caller: Caller, id: Uuid) -> DomainResult<Vec<Invitation>> {
        let project = self
            .managed(caller, id, &[Role::Owner], "manage its members")
            .await?;
        Ok(self
            .store
            .project_invitations(project.id, Utc::now())
            .await?)
    }

    /// Withdraws one of the project's invitations (owner only).
    pub async fn withdraw(&self, caller: Caller, id: Uuid, invitation: Uuid) -> DomainResult<()> {
        let project = self
            .managed(caller, id, &[Role::Owner], "manage its members")
            .await?;
        if !self
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
    async fn email_of(&self, user: Uuid) -> DomainResult<String> {
        Ok(self
            .store
            .user_by_id(user)
            .await?
            .ok_or(DomainError::NotFound("user"))?
            .email)
    }

    /// The invitations addressed to the caller.
    pub async fn my_invitations(&self, caller: Caller) -> DomainResult<Vec<Invitation>> {
        caller.need(Scope::Read)?;
        caller.need_unlimited("see invitations")?;
        let email = self.email_of(caller.user).await?;
        Ok(self.store.invitations_for(&email, Utc::now()).await?)
    }

    /// Accepts an invitation addressed to the caller: they join the project.
    pub async fn accept(&self, caller: Caller, invitation: Uuid) -> DomainResult<Project> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("accept invitations")?;
        let email = self.email_of(caller.user).await?;
        let project = self
            .store
            .accept_invitation(caller.user, &email, invitation, Utc::now())
            .await?
            .ok_or(DomainError::NotFound("invitation"))?;
        self.access.members_changed(project);
        audit(caller, "project.accept_invitation", invitation);
        self.reached(caller, project).await
    }

    /// Declines an invitation addressed to the caller.
    pub async fn decline(&self, caller: Caller, invitation: Uuid) -> DomainResult<()> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("decline invitations")?;
        let email = self.email_of(caller.user).await?;
        if !self.store.decline_invitation(&email, invitation).await? {
            return Err(DomainError::NotFound("invitation"));
        }
        audit(caller, "project.decline_invitation", invitation);
        Ok(())
    }

    /// A project's workspaces (online or not), its last tasks and its health in one word.
    pub async fn report(&self, caller: Caller, id: Uuid) -> DomainResult<ProjectReport> {
        let project = self.visible(caller, id).await?;
        let (mut last_tasks, _) = self
            .store
            .list_tasks(
                caller.user,
                &TaskFilter {
                    project: Some(project.id),
                    page: 1,
                    per_page: REPORT_TASKS,
                    ..Default::default()
                },
            )
            .await?;
        last_tasks.retain(|t| caller.reaches_task(t.project_id, t.workspace_id));
        self.feed.live.overlay(&mut last_tasks);
        // The workspaces' names and presence: from their owners' rows, with live views.
        let mut workspaces = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        for member in self.store.project_members(&project).await? {
            for w in self.workspaces.current(member.user_id).await? {
                if project.workspace_ids.contains(&w.id)
                    && caller.reaches_workspace(w.id, &[project.id])
                    && seen.insert(w.id)
                {
                    workspaces.push(Presence {
                        id: w.id,
                        name: w.name,
                        online: w.online,
                        last_seen_at: w.last_seen_at,
                    });
                }
            }
        }
        let any_online = workspaces.iter().any(|w| w.online);
        let health = match last_tasks.first() {
            Some(t) if !t.is_finished() => Health::Running,
            Some(t) if t.state != TaskState::Succeeded => Health::Failing,
            _ if !workspaces.is_empty() && !any_online => Health::Offline,
            Some(_) => Health::Healthy,
            None => Health::Idle,
        };
        Ok(ProjectReport {
            project,
            workspaces,
            last_tasks,
            health,
        })
    }
}

/// How many of its last tasks a project report shows.
const REPORT_TASKS: u32 = 10;

/// A project's workspaces, last tasks and health.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectReport {
    /// The project.
    pub project: Project,
    /// Its workspaces, online or not.
    pub workspaces: Vec<Presence>,
    /// Its last 10 tasks, newest first.
    pub last_tasks: Vec<Task>,
    /// Its health in one word.
    pub health: Health,
}

/// A workspace's name and presence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Presence {
    /// The workspace.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Whether its agent is connected.
    pub online: bool,
    /// When the relay last heard from it.
    pub last_seen_at: Option<DateTime<Utc>>,
}
