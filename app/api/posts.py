"""Posts, reactions and typing announcements."""
from flask_jwt_extended import current_user, jwt_required

from app.api import bp
from app.api.openapi import documented
from app.inputs import schemas
from app.inputs.validation import json_body
from app.ratelimit import limit_typing, limit_writes
from app.serializers import post_json
from app.services import posts, reactions, typing
from app.services.lookup import get_post


@bp.post("/posts")
@limit_writes
@jwt_required()
@documented("Write a post", body=schemas.PostIn, response=schemas.PostOut, status=201)
def create_post():
    """Create a post and announce it to the author's and followers' feeds."""
    body = json_body(schemas.PostIn)
    return {**posts.create_post(current_user.id, body.content), "my_reaction": None}, 201


@bp.get("/posts/<post_id>")
@jwt_required()
@documented("A post", response=schemas.PostOut)
def get(post_id):
    """Return a post."""
    return post_json(get_post(post_id), current_user.id)


@bp.patch("/posts/<post_id>")
@limit_writes
@jwt_required()
@documented("Edit one's own post", body=schemas.PostIn, response=schemas.PostOut)
def update(post_id):
    """Replace the content of the viewer's own post."""
    body = json_body(schemas.PostIn)
    return post_json(posts.update_post(current_user.id, post_id, body.content), current_user.id)


@bp.delete("/posts/<post_id>")
@limit_writes
@jwt_required()
@documented("Delete one's own post", status=204)
def delete(post_id):
    """Delete the viewer's own post."""
    posts.delete_post(current_user.id, post_id)
    return "", 204


@bp.put("/posts/<post_id>/reaction")
@limit_writes
@jwt_required()
@documented("React to a post, replacing one's earlier reaction", body=schemas.ReactionIn,
            response=schemas.ReactionOut)
def react(post_id):
    """Set the viewer's reaction to a post."""
    body = json_body(schemas.ReactionIn)
    post = get_post(post_id)
    post_id = post.id  # the stored form of the id, whatever its case in the URL
    data = reactions.set_reaction(current_user.id, post, body.type)
    return {"post_id": post_id, "reaction_data": data}


@bp.delete("/posts/<post_id>/reaction")
@limit_writes
@jwt_required()
@documented("Remove one's reaction to a post", response=schemas.ReactionOut)
def unreact(post_id):
    """Remove the viewer's reaction to a post."""
    post = get_post(post_id)
    post_id = post.id
    data = reactions.clear_reaction(current_user.id, post)
    return {"post_id": post_id, "reaction_data": data}


@bp.post("/posts/<post_id>/typing")
@limit_typing
@jwt_required()
@documented("Announce that the viewer is typing a comment", status=202)
def announce_typing(post_id):
    """Tell everyone on the post's channel that the viewer is typing."""
    typing.announce_typing(current_user, post_id)
    return "", 202
