"""Guidance for schools from an index result.

Levels follow the VN_AQI bands and the decision's health advice (1459/QĐ-TCMT, table 3):

- ≤ 100 (Good, Moderate) → ``normal``: the advice is "free outdoor activity" for everyone.
- 101–150 (Poor) → ``limit_prolonged``: "students may be outside but reduce prolonged exercise".
- 151–200 (Bad) → ``move_indoors``: everyone reduces strenuous outdoor activity and rests indoors more, and the
  sensitive group (children) should stay indoors: outdoor lessons and breaks move indoors.
- > 200 (Very bad, Hazardous) → ``suspend_outdoor``: "minimise outdoor activity and move activities indoors" /
  "stay indoors with doors and windows closed": no outdoor activity at all.

US and Korean results use the same numeric thresholds on their own index (their 101–150 / 151–200 bands carry
the same kind of advice for children); Korea's 101–250 "Unhealthy" band maps to 101–150 / 151–200 / > 200 by value.
"""

from __future__ import annotations

from cityhub.airquality.indices import IndexResult

_LEVELS = (
    (100, "normal", "Hoạt động ngoài trời bình thường.", "Normal outdoor activity.",
     "Chất lượng không khí tốt hoặc trung bình: mọi người được tự do hoạt động ngoài trời.",
     "Good or moderate air: everyone may be active outdoors."),
    (150, "limit_prolonged", "Hạn chế vận động mạnh và kéo dài ngoài trời (thể dục, thể thao).",
     "Limit prolonged or strenuous outdoor exercise (PE, sports).",
     "Chất lượng không khí kém: học sinh có thể ra ngoài nhưng nên giảm tập thể dục kéo dài.",
     "Poor air: students may be outside but should reduce prolonged exercise."),
    (200, "move_indoors", "Chuyển các hoạt động ngoài trời (giờ thể dục, ra chơi) vào trong nhà.",
     "Move outdoor activities (PE, breaks) indoors.",
     "Chất lượng không khí xấu: mọi người nên giảm vận động mạnh ngoài trời; trẻ em nên ở trong nhà.",
     "Bad air: everyone should reduce strenuous outdoor activity; children should stay indoors."),
    (None, "suspend_outdoor", "Dừng mọi hoạt động ngoài trời; đóng cửa ra vào và cửa sổ.",
     "Suspend all outdoor activity; keep doors and windows closed.",
     "Chất lượng không khí rất xấu hoặc nguy hại: mọi người nên ở trong nhà.",
     "Very bad or hazardous air: everyone should stay indoors."),
)  # fmt: skip


def school_guidance(result: IndexResult) -> dict:
    """{"level", "vi", "en", "reason": {"vi", "en"}, "index", "index_name", "category"}; level None when the
    index could not be computed."""
    base = {"index": result.value, "index_name": result.index_name,
            "category": None if result.category is None else result.category.to_dict()}  # fmt: skip
    if result.value is None:
        return {**base, "level": None, "vi": "Không đủ dữ liệu để tính chỉ số.", "en": "Not enough data for the index.",
                "reason": {"vi": "Thiếu dữ liệu bụi (PM).", "en": "Particulate (PM) data missing."}}  # fmt: skip
    for upper, level, vi, en, rvi, ren in _LEVELS:
        if upper is None or result.value <= upper:
            return {**base, "level": level, "vi": vi, "en": en, "reason": {"vi": rvi, "en": ren}}
    raise AssertionError("unreachable")
