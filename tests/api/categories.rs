use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{Engine, TestApp, filing};

#[tokio::test]
async fn the_bundled_standard_is_listed_as_a_tree() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut citizen = app.citizen("alice").await;
    let standard = citizen
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .unwrap()
        .into_inner();

    assert_eq!(standard.categories.len(), 14);
    let refuse = standard.categories.iter().find(|c| c.code == "01").unwrap();
    let leaf = refuse.children[0]
        .children
        .iter()
        .find(|c| c.code == "010102")
        .unwrap();
    assert_eq!(leaf.level, 3);
    assert_eq!(leaf.responsible_unit, "sd_municipal");
    let limit = leaf.time_limit.unwrap();
    assert_eq!(
        (limit.value, limit.unit()),
        (4, pb::TimeLimitUnit::WorkingDays)
    );
}

#[tokio::test]
async fn an_operator_can_replace_the_standard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("standard.json");
    std::fs::write(
        &path,
        r#"{"categories":[{"code":"A","name_zh":"道路","children":[{"code":"A1","name_zh":"路面",
            "children":[{"code":"A101","name_zh":"坑洼","responsible_unit":"sd_municipal",
            "urgency":"urgent","time_limit":{"value":6,"unit":"hours"}}]}]}]}"#,
    )
    .unwrap();
    let app =
        TestApp::spawn_with(Engine::Sqlite, |config| config.categories_file = Some(path)).await;
    let mut citizen = app.citizen("alice").await;

    let standard = citizen
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(standard.categories.len(), 1);
    assert_eq!(
        standard.categories[0].children[0].children[0].urgency(),
        pb::Urgency::Urgent
    );

    let mut request = filing("req-custom-001");
    request.category_code = "A101".to_owned();
    citizen
        .file_complaint(request)
        .await
        .expect("a leaf of the replaced standard");
    let status = citizen
        .file_complaint(filing("req-custom-002"))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "the bundled codes are gone"
    );
}
