import pytest

from tracking.channels import channel_derive, utm_from_url

PAGE = "https://www.acme.test/landing"


@pytest.mark.parametrize(
    ("utm", "referrer", "page_url", "channel"),
    [
        ({"utm_medium": "cpc", "utm_source": "google"}, "", PAGE, "PAID_SEARCH"),
        ({"utm_medium": "CPC", "utm_source": "facebook"}, "", PAGE, "PAID_SOCIAL"),
        ({"utm_medium": "paid-social"}, "", PAGE, "PAID_SOCIAL"),
        ({"utm_medium": "email"}, "https://www.google.com/", PAGE, "EMAIL_MARKETING"),
        ({"utm_medium": "social"}, "", PAGE, "ORGANIC_SOCIAL"),
        ({"utm_medium": "banner"}, "", PAGE, "DISPLAY_AD"),
        ({"utm_medium": "affiliate"}, "", PAGE, "AFFILIATE"),
        ({"utm_medium": "webinar"}, "", PAGE, "VIRTUAL_EVENT"),
        ({"utm_medium": "tradeshow"}, "", PAGE, "PHYSICAL_EVENT"),
        ({"utm_medium": "something-new"}, "", PAGE, "OTHER_CAMPAIGNS"),
        ({"utm_campaign": "spring"}, "", PAGE, "OTHER_CAMPAIGNS"),
        ({}, "", PAGE + "?gclid=abc", "PAID_SEARCH"),
        ({}, "", PAGE + "?fbclid=abc", "PAID_SOCIAL"),
        ({}, "https://www.google.co.uk/search?q=x", PAGE, "ORGANIC_SEARCH"),
        ({}, "https://duckduckgo.com/", PAGE, "ORGANIC_SEARCH"),
        ({}, "https://t.co/abc", PAGE, "ORGANIC_SOCIAL"),
        ({}, "https://www.linkedin.com/feed/", PAGE, "ORGANIC_SOCIAL"),
        ({}, "https://www.youtube.com/watch?v=1", PAGE, "VIDEO_HOSTING_PLATFORM"),
        ({}, "https://mail.google.com/mail/u/0/", PAGE, "EMAIL_MARKETING"),
        ({}, "https://blog.partner.test/post", PAGE, "REFERRAL"),
        ({}, "https://notgoogle.test/", PAGE, "REFERRAL"),
        ({}, "", PAGE, "DIRECT_TRAFFIC"),
        ({}, "https://www.acme.test/other", PAGE, "DIRECT_TRAFFIC"),
        ({}, "https://shop.acme.test/cart", PAGE, "DIRECT_TRAFFIC"),  # one of the account's own domains
        ({}, "not a url", PAGE, "DIRECT_TRAFFIC"),
    ],
)
def test_channel_derivation(utm, referrer, page_url, channel):
    assert channel_derive(utm=utm, referrer=referrer, page_url=page_url, own_domains=["*.acme.test"]) == channel


def test_utm_from_url_reads_all_five_and_clips():
    url = "https://a.test/?utm_source=news&utm_medium=email&utm_campaign=" + "c" * 300 + "&utm_term=t&utm_content=b"

    utm = utm_from_url(url)

    assert utm == {
        "utm_source": "news",
        "utm_medium": "email",
        "utm_campaign": "c" * 200,
        "utm_term": "t",
        "utm_content": "b",
    }
    assert utm_from_url("https://[broken") == dict.fromkeys(utm, "")
