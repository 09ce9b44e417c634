"""A first pass over the post routes (the full API suite lives beside it)."""


def test_create_and_read_post(api):
    alice = api.user("alice")
    post = alice.post("hello world")
    assert post["content"] == "hello world"
    assert post["author"]["username"] == "alice"
    assert post["reaction_counts"] == {t: 0 for t in ("like", "love", "haha", "wow", "sad", "angry")}
    response = alice.call("GET", f"/api/posts/{post['id']}")
    assert response.status_code == 200
    assert response.get_json()["id"] == post["id"]
